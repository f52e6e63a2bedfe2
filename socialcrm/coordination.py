"""Work that must happen in one process at a time when several share one PostgreSQL.

PostgreSQL advisory locks are keyed by two 32-bit integers: here (purpose, id), e.g.
("poll", channel id) or ("job", hash of the job name), so unrelated locks never collide. A
lock held by a process that dies is released with its connection, so a crash cannot leave a
channel locked. SQLite is the single-process default: every lock here is granted at once
there (the in-process asyncio locks of the callers still apply).

Periodic jobs are claimed per period in the `jobrun` table with one conditional upsert, so
the process that comes first runs the job and the others skip that period.
"""

from __future__ import annotations

import os
import socket
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models
from socialcrm.db import insert, is_sqlite

jobrun_t = models.JobRun.__table__
#: Run by this process; written beside each job it claims, for the operator.
PROCESS = f"{socket.gethostname()}:{os.getpid()}"[:200]


def lock_key(purpose: str, key: int | str) -> tuple[int, int]:
    """Two signed 32-bit integers for pg_*advisory_lock(int, int)."""
    number = key if isinstance(key, int) else zlib.crc32(key.encode())
    return _int32(zlib.crc32(purpose.encode())), _int32(number)


def _int32(n: int) -> int:
    n &= 0xFFFFFFFF
    return n - 2**32 if n >= 2**31 else n


@asynccontextmanager
async def exclusive(engine: AsyncEngine, purpose: str, key: int | str) -> AsyncIterator[bool]:
    """Yields True while this process holds the lock, False when another one does (do nothing then).

    A session lock on a connection of its own in autocommit mode, so the lock can be held across
    platform calls and the caller's own transactions without leaving a transaction open."""
    if is_sqlite(engine):
        yield True
        return
    a, b = lock_key(purpose, key)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        got = bool(await conn.scalar(sa.text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": a, "b": b}))
        try:
            yield got
        finally:
            if got:
                await _unlock(conn, a, b)


async def _unlock(conn: AsyncConnection, a: int, b: int) -> None:
    try:
        await conn.execute(sa.text("SELECT pg_advisory_unlock(:a, :b)"), {"a": a, "b": b})
    except Exception:
        # The connection is gone (and the lock with it) or broken: never hand it back to the
        # pool still holding the lock.
        await conn.invalidate()
        raise


async def try_xact_lock(conn: AsyncConnection, purpose: str, key: int | str) -> bool:
    """Try to take a lock that lasts until the current transaction ends; True on SQLite."""
    if is_sqlite(conn):
        return True
    a, b = lock_key(purpose, key)
    return bool(await conn.scalar(sa.text("SELECT pg_try_advisory_xact_lock(:a, :b)"), {"a": a, "b": b}))


def xact_lock_sync(conn: Connection, purpose: str, key: int | str) -> None:
    """Wait for a lock that lasts until the current transaction ends (routing); no-op on SQLite,
    whose single writer already serialises the transactions that take it."""
    if conn.dialect.name == "sqlite":
        return
    a, b = lock_key(purpose, key)
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": a, "b": b})


async def claim_period(engine: AsyncEngine, name: str, period: timedelta, now: datetime) -> bool:
    """True when this process should run job `name` now: nobody started it within `period`.

    One statement: insert the job's row, or move its time forward only if the last run is a
    period old. Two processes claiming at once are serialised by the row, and the second sees
    the first one's time and gets no row back. A tenth of the period (at most a second) of
    slack lets the scheduler's own jitter not skip a period."""
    slack = min(period / 10, timedelta(seconds=1))
    values = {"last_run_at": now, "run_by": PROCESS}
    stmt = insert(engine, jobrun_t).values(name=name, **values)
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_=values,
                                      where=jobrun_t.c.last_run_at <= now - period + slack)
    async with engine.begin() as conn:
        claimed = (await conn.execute(stmt.returning(jobrun_t.c.name))).first()
    return claimed is not None
