"""coordination tables for several processes (issue 8)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 18:00:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (the autogenerate template imports it for AutoString)
from alembic import op

import socialcrm.models

revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # When each periodic job last ran in any process: several server processes run it once a period.
    op.create_table('jobrun',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('last_run_at', socialcrm.models.UTCDateTime(), nullable=False),
    sa.Column('run_by', sa.String(length=200), nullable=False, server_default=''),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('jobrun')
