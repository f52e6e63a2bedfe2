"""SLA policies and team calendars (issue 5)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:00:00.000000

The first-response targets stay where they were (channel.sla_public_minutes and
sla_private_minutes); the new tables add next-response and resolution targets per channel and
visibility, and business hours per team. No row means the defaults, so existing installations
keep counting as before (24/7) until a lead sets up a calendar.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel  # noqa: F401

import socialcrm.models
from alembic import op

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'channelsla',
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('public', sa.Boolean(), nullable=False),
        sa.Column('next_response_minutes', sa.Integer(), nullable=True),
        sa.Column('resolution_minutes', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['channel_id'], ['channel.id']),
        sa.PrimaryKeyConstraint('channel_id', 'public'),
    )
    op.create_table(
        'teamcalendar',
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('tz', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('always_open', sa.Boolean(), nullable=False),
        sa.Column('hours', sa.JSON(), nullable=False),
        sa.Column('holidays', sa.JSON(), nullable=False),
        sa.Column('at_risk_fraction', sa.Float(), nullable=False),
        sa.Column('updated_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('team_id'),
    )
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sla_risk_at', socialcrm.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.drop_column('sla_risk_at')
    op.drop_table('teamcalendar')
    op.drop_table('channelsla')
