"""full-text search and merge suggestions (issue 7)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 18:00:00.000000

The full-text objects are not SQLAlchemy tables, so they are written out here as SQL (frozen:
socialcrm.search holds the same statements for `create_all`). SQLite: FTS5 external-content
tables fed by triggers, filled once from the existing rows ('rebuild'). PostgreSQL: a stored
generated tsvector column on message (outside the models) and GIN indexes, built from the
existing rows.
A later SQLite migration that recreates message, identity or contact (a batch "move and copy")
drops their triggers: it must create them again.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import socialcrm.models

revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TOKENIZE = "unicode61 remove_diacritics 0"
FTS = {"message_fts": ("message", ("text",)),
       "identity_fts": ("identity", ("name", "handle")),
       "contact_fts": ("contact", ("name",))}
SIMPLE = "'simple'::regconfig"
PG_MESSAGE_COLUMN = (f"ALTER TABLE message ADD COLUMN IF NOT EXISTS search_tsv tsvector "
                     f"GENERATED ALWAYS AS (to_tsvector({SIMPLE}, text)) STORED")
PG_INDEXES = {
    "ix_message_fts": "ON message USING gin (search_tsv)",
    "ix_identity_fts": f"ON identity USING gin (to_tsvector({SIMPLE}, name || ' ' || handle || ' ' || "
                       f"translate(handle, '._', '  ')))",
    "ix_contact_fts": f"ON contact USING gin (to_tsvector({SIMPLE}, name))",
}


def _sqlite_fts(table: str, source: str, columns: tuple) -> list:
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    delete = f"INSERT INTO {table}({table}, rowid, {cols}) VALUES ('delete', old.id, {old});"
    insert = f"INSERT INTO {table}(rowid, {cols}) VALUES (new.id, {new});"
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5({cols}, content='{source}', "
        f"content_rowid='id', tokenize='{TOKENIZE}')",
        f"CREATE TRIGGER IF NOT EXISTS {table}_ai AFTER INSERT ON {source} BEGIN {insert} END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_ad AFTER DELETE ON {source} BEGIN {delete} END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_au AFTER UPDATE OF {cols} ON {source} BEGIN {delete} {insert} END",
        f"INSERT INTO {table}({table}) VALUES ('rebuild')",
    ]


def upgrade() -> None:
    op.create_table(
        'mergesuggestion',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('keep_contact_id', sa.Integer(), nullable=False),
        sa.Column('merge_contact_id', sa.Integer(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('moved', sa.JSON(), nullable=False),
        sa.Column('created_at', socialcrm.models.UTCDateTime(), nullable=False),
        sa.Column('decided_at', socialcrm.models.UTCDateTime(), nullable=True),
        sa.Column('decided_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['decided_by'], ['user.id']),
        sa.ForeignKeyConstraint(['keep_contact_id'], ['contact.id']),
        sa.ForeignKeyConstraint(['merge_contact_id'], ['contact.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('keep_contact_id', 'merge_contact_id', name='uq_merge_pair'),
    )
    op.create_index('ix_merge_keep', 'mergesuggestion', ['keep_contact_id', 'status'], unique=False)
    op.create_index('ix_merge_other', 'mergesuggestion', ['merge_contact_id', 'status'], unique=False)
    op.create_table(
        'contactpoint',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column('identity_id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['identity_id'], ['identity.id']),
        sa.ForeignKeyConstraint(['message_id'], ['message.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'value', 'identity_id', name='uq_contact_point'),
    )
    op.create_index(op.f('ix_contactpoint_identity_id'), 'contactpoint', ['identity_id'], unique=False)
    op.create_table(
        'mergescan',
        sa.Column('name', sa.String(length=20), nullable=False),
        sa.Column('last_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    if op.get_bind().dialect.name == "sqlite":
        for table, (source, columns) in FTS.items():
            for statement in _sqlite_fts(table, source, columns):
                op.execute(statement)
    else:
        op.execute(PG_MESSAGE_COLUMN)       # rewrites the table once: every message gets its vector
        for name, definition in PG_INDEXES.items():
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} {definition}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in FTS:
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {table}")
    else:
        for name in PG_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute("ALTER TABLE message DROP COLUMN IF EXISTS search_tsv")
    op.drop_table('mergescan')
    op.drop_index(op.f('ix_contactpoint_identity_id'), table_name='contactpoint')
    op.drop_table('contactpoint')
    op.drop_index('ix_merge_other', table_name='mergesuggestion')
    op.drop_index('ix_merge_keep', table_name='mergesuggestion')
    op.drop_table('mergesuggestion')
