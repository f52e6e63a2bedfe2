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
        assert [d for d in diff if not _is_queue_index(d)] == []
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: {i["name"] for i in sa.inspect(c).get_indexes("conversation")})
        assert EXPRESSION_INDEXES <= indexes
    finally:
        if not database_url.startswith("sqlite"):     # leave the shared test database as the others expect
            async with engine.begin() as conn:
                await conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        await engine.dispose()


EXPRESSION_INDEXES = {"ix_conversation_queue", "ix_conversation_assignee", "ix_conversation_unassigned",
                      "ix_conversation_team_queue"}


def _is_queue_index(change: tuple) -> bool:
    return change[0] in ("add_index", "remove_index") and change[1].name in EXPRESSION_INDEXES
