"""one tracked thread: a public comment answered privately (issue 7)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 18:00:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (the autogenerate template imports it for AutoString)
from alembic import op

revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Nullable: existing conversations are linked to nothing. On SQLite the column (with its
    # REFERENCES clause) is added in place: a batch rebuild of `conversation` would fail on the
    # tables that reference it and would lose its hand-written partial and DESC indexes.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE conversation ADD COLUMN linked_from_id INTEGER REFERENCES conversation (id)')
    else:
        op.add_column('conversation', sa.Column('linked_from_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_conversation_linked_from_id', 'conversation', 'conversation',
                              ['linked_from_id'], ['id'])
    op.create_index('ix_conversation_linked_from_id', 'conversation', ['linked_from_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_conversation_linked_from_id', table_name='conversation')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint('fk_conversation_linked_from_id', 'conversation', type_='foreignkey')
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.drop_column('linked_from_id')
