"""standard answers and help articles (issue 7)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 18:00:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import socialcrm.models

revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'standardanswer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('tags', sa.String(length=500), server_default='', nullable=False),
        sa.Column('language', sa.String(length=16), server_default='', nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=True),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.Column('updated_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['created_by'], ['user.id']),
        sa.ForeignKeyConstraint(['owner_id'], ['user.id']),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_standardanswer_team', 'standardanswer', ['team_id', 'title'], unique=False)
    op.create_index('ix_standardanswer_owner', 'standardanswer', ['owner_id', 'title'], unique=False)
    op.create_table(
        'helparticle',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column('created_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.Column('updated_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'helplink',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=16), nullable=False),
        sa.Column('article_id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('clicks', sa.Integer(), server_default='0', nullable=False),
        sa.Column('first_click_at', socialcrm.models.UTCDateTime(), nullable=True),
        sa.Column('last_click_at', socialcrm.models.UTCDateTime(), nullable=True),
        sa.Column('created_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['agent_id'], ['user.id']),
        sa.ForeignKeyConstraint(['article_id'], ['helparticle.id']),
        sa.ForeignKeyConstraint(['channel_id'], ['channel.id']),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id']),
        sa.ForeignKeyConstraint(['message_id'], ['message.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('article_id', 'conversation_id', name='uq_helplink_article_conversation'),
        sa.UniqueConstraint('code'),
    )


def downgrade() -> None:
    op.drop_table('helplink')
    op.drop_table('helparticle')
    op.drop_index('ix_standardanswer_owner', table_name='standardanswer')
    op.drop_index('ix_standardanswer_team', table_name='standardanswer')
    op.drop_table('standardanswer')
