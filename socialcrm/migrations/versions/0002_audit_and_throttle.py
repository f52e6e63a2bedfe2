"""audit log and login throttle

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 16:40:15.002856
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import socialcrm.models

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('loginthrottle',
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', socialcrm.models.UTCDateTime(), nullable=False),
    sa.Column('locked_until', socialcrm.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('username')
    )
    op.create_table('auditentry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', socialcrm.models.UTCDateTime(), nullable=False),
    sa.Column('actor_user_id', sa.Integer(), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('target', sa.Text(), server_default='', nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['actor_user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auditentry', schema=None) as batch_op:
        batch_op.create_index('ix_audit_action', ['action', 'id'], unique=False)
        batch_op.create_index('ix_audit_actor', ['actor_user_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('auditentry', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_actor')
        batch_op.drop_index('ix_audit_action')
    op.drop_table('auditentry')
    op.drop_table('loginthrottle')
