"""Engine and sessions: SQLite (WAL) by default, PostgreSQL (asyncpg) by URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from socialcrm import models  # noqa: F401  (registers the tables on the metadata)
from socialcrm import search
from socialcrm.config import normalize_database_url


#: How long a SQLite writer waits for another one's lock before giving up; a webhook then
#: answers 503 and the platform retries.
SQLITE_BUSY_SECONDS = 5.0


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the engine; SQLite gets WAL, a busy timeout and foreign keys on every connection."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS}, **kwargs)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def make_sync_engine(url: str) -> sa.Engine | None:
    """For SQLite only: a plain (thread-side) engine for the webhook writer. Each aiosqlite
    statement costs several thread hand-offs (about 0.8 ms here); the writer instead runs a
    whole batch on one connection in one worker thread, one hand-off per batch."""
    url = normalize_database_url(url)
    if not url.startswith("sqlite"):
        return None
    engine = sa.create_engine(url.replace("sqlite+aiosqlite://", "sqlite://", 1),
                              connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def unavailable(exc: BaseException) -> bool:
    """The database could not be reached, went away mid-statement or stayed locked: the same
    work may succeed later, so answer 503 (or keep the work pending) rather than fail it."""
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError))
    return isinstance(exc, (OSError, TimeoutError, sa.exc.TimeoutError))


def is_sqlite(engine_or_conn: AsyncEngine | AsyncConnection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


def insert(engine_or_conn: AsyncEngine | AsyncConnection, table: sa.Table) -> Any:
    """An INSERT that supports ON CONFLICT on both dialects."""
    dialect = sqlite if is_sqlite(engine_or_conn) else postgresql
    return dialect.insert(table)


@asynccontextmanager
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine, expire_on_commit=False) as s:
        yield s


async def create_all(engine: AsyncEngine) -> None:
    """Create the schema directly from the models (tests); production uses `socialcrm migrate`."""
    async with engine.begin() as conn:
        await conn.run_sync(models.SQLModel.metadata.create_all)
        await search.create_index_objects(conn)   # full-text objects live outside the metadata


async def drop_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await search.drop_index_objects(conn)
        await conn.run_sync(models.SQLModel.metadata.drop_all)


async def optimize(engine: AsyncEngine) -> None:
    """Fresh planner statistics. SQLite has no autovacuum-analyze at all, and PostgreSQL's may
    not have run yet after a bulk import: without them both pick the team index over the inbox's
    priority indexes (seconds instead of milliseconds on a million conversations). Bounded work."""
    if not is_sqlite(engine):
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE conversation")
        return
    async with engine.begin() as conn:
        # A sampled ANALYZE (about 1000 rows per index): milliseconds even on millions of rows.
        await conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        await conn.exec_driver_sql("ANALYZE")
