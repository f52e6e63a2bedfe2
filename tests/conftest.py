"""Shared fixtures: a fresh database per test on SQLite, and on PostgreSQL when configured.

PostgreSQL tests run when SOCIALCRM_TEST_POSTGRES_URL is set (.ci/run sets it) and are
reported as skipped, with the reason, otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from socialcrm.db import create_all, make_engine
from socialcrm.models import metadata

PG_URL = os.environ.get("SOCIALCRM_TEST_POSTGRES_URL")
PG_SKIP = "PostgreSQL tests skipped: set SOCIALCRM_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test"


def run_blocking(coro) -> None:
    """Run a coroutine to completion even when called from inside a running event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A throwaway database on the configured server, with the schema, for this test session."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    name = f"socialcrm_test_{uuid.uuid4().hex[:10]}"
    base = PG_URL.rsplit("/", 1)[0]

    async def admin(sql: str) -> None:
        engine = make_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        async with engine.connect() as conn:
            await conn.execute(sa.text(sql))
        await engine.dispose()

    async def schema(url: str) -> None:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        await create_all(engine)
        await engine.dispose()

    run_blocking(admin(f'CREATE DATABASE "{name}"'))
    url = f"{base}/{name}"
    run_blocking(schema(url))
    yield url
    run_blocking(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate(engine: AsyncEngine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """The URL of an empty, migrated-equivalent database; each test runs on both backends."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        engine = make_engine(url)
        await create_all(engine)
        await engine.dispose()
        yield url
        return
    url = request.getfixturevalue("pg_database_url")
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    await _truncate(engine)
    await engine.dispose()
    yield url


@pytest.fixture
async def pg_url(pg_database_url: str) -> str:
    """An emptied PostgreSQL database: what several processes share (skipped without PostgreSQL)."""
    engine = make_engine(pg_database_url, poolclass=sa.pool.NullPool)
    await _truncate(engine)
    await engine.dispose()
    return pg_database_url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


# -- CI: nothing may be skipped --------------------------------------------------------------
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With SOCIALCRM_REQUIRE_ALL_TESTS=1 (.ci/run) a skipped test fails the run."""
    if os.environ.get("SOCIALCRM_REQUIRE_ALL_TESTS") == "1" and _skipped and exitstatus == 0:
        print(f"\n{len(_skipped)} tests were skipped but CI requires all to run, e.g. {_skipped[0]}")
        session.exitstatus = 1
