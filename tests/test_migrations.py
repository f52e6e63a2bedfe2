"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from socialcrm.db import make_engine
from socialcrm.migrate import current_revision, head_revision, upgrade
from socialcrm.models import metadata


async def test_upgrade_head_matches_the_models(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
    else:
        url = database_url
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await engine.dispose()
    # Alembic's env runs its own event loop, so it runs in a thread, as `socialcrm migrate` would.
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        # Expression indexes cannot be compared by reflection; that one is checked by name below.
        assert [d for d in diff if not _is_queue_index(d) and not _is_full_text(d)] == []
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: {i["name"] for i in sa.inspect(c).get_indexes("conversation")})
        assert EXPRESSION_INDEXES <= indexes
        async with engine.connect() as conn:
            definitions = await _index_definitions(conn)
        # A later migration that rebuilds `conversation` (SQLite batch mode) would silently drop these.
        assert all("priority DESC" in definitions[name] for name in EXPRESSION_INDEXES), definitions
        assert "WHERE" in definitions["ix_conversation_unassigned"].upper()
    finally:
        if not database_url.startswith("sqlite"):     # leave the shared test database as the others expect
            async with engine.begin() as conn:
                await conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        await engine.dispose()


EXPRESSION_INDEXES = {"ix_conversation_queue", "ix_conversation_assignee", "ix_conversation_unassigned",
                      "ix_conversation_team_queue"}


async def _index_definitions(conn) -> dict[str, str]:
    """CREATE INDEX text of the conversation table's indexes, as the database keeps it."""
    if conn.dialect.name == "sqlite":
        sql = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'conversation'"
    else:
        sql = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'conversation'"
    return {name: text or "" for name, text in (await conn.execute(sa.text(sql))).all()}


def _is_queue_index(change: tuple) -> bool:
    return change[0] in ("add_index", "remove_index") and change[1].name in EXPRESSION_INDEXES


def _is_full_text(change: tuple) -> bool:
    """The search objects outside the metadata: FTS5 tables and their shadow tables on SQLite
    (message_fts, message_fts_data, ...), message.search_tsv and GIN indexes on PostgreSQL; checked in
    tests/test_search_schema.py."""
    from socialcrm.search import FTS_TABLES, PG_INDEXES, PG_MESSAGE_COLUMN

    if change[0] == "remove_table":
        return any(change[1].name == t or change[1].name.startswith(f"{t}_") for t in FTS_TABLES)
    if change[0] == "remove_column":
        return change[2] == "message" and change[3].name == PG_MESSAGE_COLUMN
    return change[0] == "remove_index" and change[1].name in PG_INDEXES
