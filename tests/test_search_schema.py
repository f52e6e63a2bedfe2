"""The full-text objects that live outside the metadata: created by `create_all` and by the
migration, on both databases, and filled from the rows that existed before the migration."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from socialcrm import search
from socialcrm.db import make_engine
from socialcrm.migrate import upgrade
from socialcrm.users import Viewer
from tests.conftest import PG_SKIP, PG_URL

LEAD = Viewer(id=0, username="l", display_name="", role="lead", online=True, session_epoch=0, team_ids=frozenset())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_url(request, tmp_path) -> AsyncIterator[str]:
    """A database with no schema at all (the migrations build it); PostgreSQL: a throwaway one."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    if not PG_URL:
        pytest.skip(PG_SKIP)
    name = f"socialcrm_fts_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def objects(engine) -> set[str]:
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = await conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')"))
            return {r[0] for r in rows}
        rows = await conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"))
        columns = await conn.execute(sa.text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'message'"))
        return {r[0] for r in rows} | {f"message.{r[0]}" for r in columns}


def expected(dialect: str) -> set[str]:
    if dialect == "sqlite":
        return set(search.FTS_TABLES) | {f"{t}_{s}" for t in search.FTS_TABLES for s in ("ai", "ad", "au")}
    return set(search.PG_INDEXES) | {f"message.{search.PG_MESSAGE_COLUMN}"}


async def seed_one_message(engine) -> None:
    """Raw SQL on purpose: the schema is the one of revision 0007, not of the current models."""
    async with engine.begin() as conn:
        for sql in ("INSERT INTO team (id, name) VALUES (1, 'Care')",
                    "INSERT INTO channel (id, connector, name, team_id, settings, secrets_encrypted, status, "
                    "status_reason, auto_assign, csat_enabled, reply_signature, poll_enabled, created_at) VALUES "
                    "(1, 'simulator', 'Sim', 1, '{}', '', 'active', '', true, false, '', false, '2026-11-25 09:00:00')",
                    "INSERT INTO contact (id, name, created_at) VALUES (1, 'Åse Ødegård', '2026-11-25 09:00:00')",
                    "INSERT INTO identity (id, channel_id, contact_id, original_contact_id, external_id, name, handle, "
                    "avatar_url, is_self, unreachable) VALUES (1, 1, 1, 1, 'u1', 'Åse Ødegård', 'ase.o', '', false, false)",
                    "INSERT INTO conversation (id, channel_id, team_id, contact_id, identity_id, thread_key, "
                    "thread_external_id, public, status, priority, last_message_preview, assignment_reason, created_at) "
                    "VALUES (1, 1, 1, 1, 1, 't1', 't1', false, 'open', 0, '', '', '2026-11-25 09:00:00')",
                    "INSERT INTO message (id, conversation_id, channel_id, direction, kind, public, text, attachments, "
                    "status, error, moderation, deleted, reactions, created_at) VALUES (1, 1, 1, 'in', 'message', false, "
                    "'Pakken fra forrige uke er borte', '[]', 'received', '', '', false, '{}', '2026-11-25 09:00:00')"):
            await conn.execute(sa.text(sql))


async def test_create_all_makes_the_full_text_objects(database_url):
    engine = make_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        assert expected(engine.dialect.name) <= await objects(engine)
    finally:
        await engine.dispose()


async def test_the_migration_makes_them_and_indexes_rows_that_were_already_there(empty_url):
    await asyncio.to_thread(upgrade, empty_url, "0007")
    engine = make_engine(empty_url, poolclass=sa.pool.NullPool)
    try:
        await seed_one_message(engine)
        # Up to this migration only: the search reads no column a later one adds.
        await asyncio.to_thread(upgrade, empty_url, "0008")
        assert expected(engine.dialect.name) <= await objects(engine)
        for raw in ("borte", "pakk", "Ødegård", "@ase.o"):
            assert [r.conversation_id for r in (await search.search(engine, LEAD, raw)).results] == [1], raw
    finally:
        await engine.dispose()
