"""Load tests: real `socialcrm serve` processes on one PostgreSQL database, a fake platform on
loopback, deliberate crashes. Marked `load`; they run in `make test` (about a minute together)
and need SOCIALCRM_TEST_POSTGRES_URL, like every PostgreSQL test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import PG_SKIP
from tests.load.stack import pg_database


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "load: real processes and a real PostgreSQL under load (tests/load)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/load/" in str(item.fspath):
            item.add_marker(pytest.mark.load)
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database with the schema, for one test (its servers share it)."""
    if not os.environ.get("SOCIALCRM_TEST_POSTGRES_URL"):
        pytest.skip(PG_SKIP)
    with pg_database() as url:
        yield url
