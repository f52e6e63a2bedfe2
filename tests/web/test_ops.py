"""/readyz and /metrics: readiness from the database, metrics behind a bearer token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from socialcrm import models
from socialcrm.core import Core
from socialcrm.migrate import head_revision
from socialcrm.models import utcnow
from socialcrm.web.app import create_app
from socialcrm.web.ops import failure_reason
from tests.support import ev
from tests.web.conftest import World

METRICS_TOKEN = "prom-scrape-token-1"
receipt_t = models.Receipt.__table__
outbox_t = models.OutboxEntry.__table__
channel_t = models.Channel.__table__
message_t = models.Message.__table__


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.make_url("/")) as session:
        yield session


@pytest.fixture
async def metrics_server(core: Core) -> AsyncIterator[aiohttp.ClientSession]:
    """The app with a metrics token configured (the default has none: /metrics is off)."""
    core.settings.metrics_token = SecretStr(METRICS_TOKEN)
    server = TestServer(create_app(core.settings, core))
    await server.start_server()
    async with aiohttp.ClientSession(base_url=server.make_url("/")) as session:
        yield session
    await server.close()


@pytest.fixture(autouse=True)
async def drop_stamp(core: Core) -> AsyncIterator[None]:
    """The PostgreSQL test database lives for the session and only our tables are truncated."""
    yield
    async with core.engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


async def stamp(core: Core, revision: str | None) -> None:
    """Record a schema revision as `socialcrm migrate` would (the test schema comes from create_all)."""
    async with core.engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        await conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        await conn.execute(sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": revision})


# -- /readyz -------------------------------------------------------------------------------------

async def test_readyz_is_503_when_migrations_were_never_applied(http) -> None:
    resp = await http.get("/readyz")
    body = await resp.json()
    assert resp.status == 503
    assert body["database"] == "ok" and body["migrations"] == "not applied"
    assert body["reason"] == "migrations: not applied"


async def test_readyz_is_200_at_head(core, http) -> None:
    await stamp(core, head_revision())
    resp = await http.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"database": "ok", "migrations": "current"}


async def test_readyz_is_503_on_an_older_schema(core, http) -> None:
    await stamp(core, "0000_older")
    resp = await http.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["reason"].startswith("migrations: at 0000_older")


async def test_readyz_needs_no_sign_in(http) -> None:
    resp = await http.get("/readyz", allow_redirects=False)
    assert resp.status in (200, 503) and "location" not in resp.headers


# -- /metrics: access ------------------------------------------------------------------------------

async def test_metrics_are_off_without_a_token(http) -> None:
    resp = await http.get("/metrics", headers={"Authorization": "Bearer anything"}, allow_redirects=False)
    assert resp.status == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", "Bearer ",
                                    f"Bearer {METRICS_TOKEN}x"])
async def test_metrics_refuse_a_missing_or_wrong_token(metrics_server, header) -> None:
    resp = await metrics_server.get("/metrics", headers={"Authorization": header} if header else {},
                                    allow_redirects=False)
    assert resp.status == 401
    assert "socialcrm_" not in await resp.text()


async def test_metrics_with_the_token_are_prometheus_text(metrics_server) -> None:
    resp = await metrics_server.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(await resp.text())}
    assert {"socialcrm_webhook_deliveries_last_hour", "socialcrm_ingest_lag_seconds", "socialcrm_outbox_depth",
            "socialcrm_outbox_oldest_pending_age_seconds", "socialcrm_send_failures_last_hour",
            "socialcrm_channel_last_event_age_seconds"} <= names
    assert "python_gc_objects_collected" not in names   # our own registry, not the global one


# -- /metrics: figures -------------------------------------------------------------------------------

async def scrape(session: aiohttp.ClientSession) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await session.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(await resp.text()) for s in family.samples}


async def add_receipts(core: Core, channel_id: int) -> None:
    now = utcnow()
    rows = [("processed", now - timedelta(minutes=5)), ("processed", now - timedelta(minutes=50)),
            ("failed", now - timedelta(minutes=10)), ("pending", now - timedelta(seconds=90)),
            ("pending", now - timedelta(seconds=30)), ("processed", now - timedelta(hours=3))]
    async with core.engine.begin() as conn:
        for status, at in rows:
            await conn.execute(receipt_t.insert().values(connector="simulator", channel_id=channel_id,
                                                         received_at=at, headers={}, body=b"{}", status=status))


async def add_outbox(core: Core, world: World) -> None:
    """Six messages, six outbox entries: two pending, one sending, three failed (one long ago)."""
    await world.ingest(world.care_channel, [ev("message", f"m{i}", "t1") for i in range(6)])
    async with core.engine.begin() as conn:
        ids = (await conn.scalars(sa.select(message_t.c.id).order_by(message_t.c.id))).all()
        now = utcnow()
        entries = [("pending", now - timedelta(minutes=7), ""), ("pending", now - timedelta(minutes=1), ""),
                   ("sending", now, ""),
                   ("failed", now - timedelta(minutes=20), "Gave up after 5 attempts: Simulator failed (HTTP 503): x"),
                   ("failed", now - timedelta(minutes=2), "Simulator failed (HTTP 503): y"),
                   ("failed", now - timedelta(hours=5), "Reply window closed: too late")]
        for message_id, (status, at, error) in zip(ids, entries, strict=True):
            await conn.execute(outbox_t.insert().values(
                message_id=message_id, channel_id=world.care_channel, payload={}, status=status,
                created_at=at, next_attempt_at=at, last_error=error))


async def test_metrics_count_deliveries_of_the_last_hour_by_result(metrics_server, world, core) -> None:
    await add_receipts(core, world.care_channel)
    figures = await scrape(metrics_server)
    deliveries = {dict(labels)["result"]: value for (name, labels), value in figures.items()
                  if name == "socialcrm_webhook_deliveries_last_hour"}
    assert deliveries == {"processed": 2, "failed": 1, "pending": 2}   # the 3-hour-old one is out
    assert 85 <= figures[("socialcrm_ingest_lag_seconds", ())] < 150


async def test_metrics_show_outbox_depth_age_and_failures(metrics_server, world, core) -> None:
    await add_outbox(core, world)
    figures = await scrape(metrics_server)
    assert figures[("socialcrm_outbox_depth", (("status", "pending"),))] == 2
    assert figures[("socialcrm_outbox_depth", (("status", "sending"),))] == 1
    assert 7 * 60 - 5 <= figures[("socialcrm_outbox_oldest_pending_age_seconds", ())] < 7 * 60 + 60
    failures = {dict(labels)["reason"]: value for (name, labels), value in figures.items()
                if name == "socialcrm_send_failures_last_hour"}
    assert failures == {"Simulator failed": 2}   # the 5-hour-old one is out of the window


async def test_metrics_are_zero_on_an_idle_inbox(metrics_server, world) -> None:
    figures = await scrape(metrics_server)
    assert figures[("socialcrm_ingest_lag_seconds", ())] == 0
    assert figures[("socialcrm_outbox_depth", (("status", "pending"),))] == 0
    assert figures[("socialcrm_webhook_deliveries_last_hour", (("result", "failed"),))] == 0


async def test_metrics_show_last_event_age_per_channel(metrics_server, world, core) -> None:
    async with core.engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == world.care_channel)
                           .values(last_event_at=utcnow() - timedelta(hours=2)))
        await conn.execute(channel_t.update().where(channel_t.c.id == world.other_channel)
                           .values(last_event_at=None, status="needs_reauth"))
    figures = await scrape(metrics_server)
    care = (("channel_id", str(world.care_channel)), ("connector", "simulator"))
    other = (("channel_id", str(world.other_channel)), ("connector", "simulator"))
    assert 7200 <= figures[("socialcrm_channel_last_event_age_seconds", care)] < 7300
    assert ("socialcrm_channel_last_event_age_seconds", other) not in figures
    assert figures[("socialcrm_channel_status", (*other, ("status", "needs_reauth")))] == 1


@pytest.mark.parametrize(("text", "label"), [
    ("Gave up after 5 attempts: Simulator failed (HTTP 503): boom", "Simulator failed"),
    ("channel needs re-authorisation: Graph error 190", "channel needs re-authorisation"),
    ("", "unknown"),
    ("https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage", "https"),
    ("x" * 100, "x" * 40),
])
def test_failure_reasons_are_short_labels(text: str, label: str) -> None:
    assert failure_reason(text) == label
