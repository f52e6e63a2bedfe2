"""notes, mentions, tags, snooze and spam (issue 7)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 18:00:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import socialcrm.models

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Server defaults fill the existing rows; the application always writes these columns.
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snoozed_until', socialcrm.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('resolve_reason', sa.String(length=300), server_default='', nullable=False))
        batch_op.add_column(sa.Column('language', sa.String(length=16), server_default='', nullable=False))
    op.create_table(
        'conversationtag',
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('tag', sa.String(length=40), nullable=False),
        sa.Column('by_user_id', sa.Integer(), nullable=True),
        sa.Column('created_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['by_user_id'], ['user.id']),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id']),
        sa.PrimaryKeyConstraint('conversation_id', 'tag'),
    )
    op.create_index('ix_conversationtag_tag', 'conversationtag', ['tag', 'conversation_id'], unique=False)
    op.create_table(
        'notification',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('actor_user_id', sa.Integer(), nullable=True),
        sa.Column('created_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.Column('read_at', socialcrm.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['actor_user_id'], ['user.id']),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id']),
        sa.ForeignKeyConstraint(['message_id'], ['message.id']),
        sa.ForeignKeyConstraint(['user_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('message_id', 'user_id', name='uq_notification_message_user'),
    )
    op.create_index('ix_notification_unread', 'notification', ['user_id', 'read_at', 'id'], unique=False)
    op.create_index('ix_notification_user', 'notification', ['user_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_notification_user', table_name='notification')
    op.drop_index('ix_notification_unread', table_name='notification')
    op.drop_table('notification')
    op.drop_index('ix_conversationtag_tag', table_name='conversationtag')
    op.drop_table('conversationtag')
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.drop_column('language')
        batch_op.drop_column('resolve_reason')
        batch_op.drop_column('snoozed_until')
