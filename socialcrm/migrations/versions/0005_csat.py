"""CSAT surveys (issue 5)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 18:00:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel  # noqa: F401

import socialcrm.models
from alembic import op

revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'csatsurvey',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('token_sha256', sa.String(length=64), nullable=False),
        sa.Column('sent_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.Column('expires_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.Column('answered_at', socialcrm.models.UTCDateTime(), nullable=True),
        sa.Column('rating', sa.Integer(), nullable=True),
        sa.Column('first_contact', sa.Boolean(), nullable=True),
        sa.Column('self_help', sa.Boolean(), nullable=True),
        sa.Column('comment', sa.Text(), server_default='', nullable=False),
        sa.Column('details_at', socialcrm.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['agent_id'], ['user.id']),
        sa.ForeignKeyConstraint(['channel_id'], ['channel.id']),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id']),
        sa.ForeignKeyConstraint(['message_id'], ['message.id']),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('conversation_id'),
        sa.UniqueConstraint('token_sha256'),
    )
    op.create_index('ix_csatsurvey_sent', 'csatsurvey', ['sent_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_csatsurvey_sent', table_name='csatsurvey')
    op.drop_table('csatsurvey')
