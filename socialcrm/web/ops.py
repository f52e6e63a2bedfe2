"""Operations endpoints: `/readyz` for load balancers, `/metrics` for Prometheus.

`/healthz` (alive) lives in auth.py. Metrics are computed from the database at scrape time,
so every process (and a restarted one) reports the same truth, and nothing is lost between
scrapes. Each query is bounded by an index or a LIMIT: a scrape must stay cheap on a busy
inbox. Figures go into a registry made per scrape, never prometheus-client's global one.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    generate_latest,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models
from socialcrm.checks import check_database
from socialcrm.logs import redact
from socialcrm.models import utcnow
from socialcrm.web.keys import CORE, SETTINGS

routes = web.RouteTableDef()

receipt_t = models.Receipt.__table__
outbox_t = models.OutboxEntry.__table__
channel_t = models.Channel.__table__

WINDOW = timedelta(hours=1)
#: Windowed counts look at the newest rows only (by primary key), so a scrape never scans a
#: year of history; past this many rows an hour the figure is a lower bound.
RECENT_ROWS = 50_000
#: Failure reasons become label values: keep their number bounded.
MAX_REASONS = 20
GAVE_UP = re.compile(r"^Gave up after \d+ attempts:\s*", re.IGNORECASE)
DELIVERY_RESULTS = ("pending", "processed", "failed")


# -- /readyz ----------------------------------------------------------------------------------

@routes.get("/readyz", name="readyz")
async def readyz(request: web.Request) -> web.StreamResponse:
    """200 when this process can serve: the database answers and its schema is at head."""
    findings = await check_database(request.app[CORE].engine)
    body = {f.subject: f.message.split(":", 1)[0] for f in findings}
    problems = [f"{f.subject}: {f.message.split(':', 1)[0]}" for f in findings if not f.ok]
    if problems:
        body["reason"] = "; ".join(problems)
    return web.json_response(body, status=503 if problems else 200)


# -- /metrics ---------------------------------------------------------------------------------

@routes.get("/metrics", name="metrics")
async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus text format, for holders of the metrics token only; off without one."""
    token = request.app[SETTINGS].metrics_token
    if token is None:
        return web.Response(status=404, text="metrics are disabled: set SOCIALCRM_METRICS_TOKEN")
    if not bearer_matches(request.headers.get("Authorization", ""), token.get_secret_value()):
        return web.Response(status=401, text="a valid metrics token is required",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    figures = await gather_figures(request.app[CORE].engine, utcnow())
    response = web.Response(body=render_metrics(figures))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def bearer_matches(header: str, expected: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte from timings."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


@dataclass
class Figures:
    deliveries: dict[str, int] = field(default_factory=dict)
    ingest_lag: float = 0.0
    outbox_depth: dict[str, int] = field(default_factory=dict)
    outbox_oldest_age: float = 0.0
    send_failures: dict[str, int] = field(default_factory=dict)
    #: (channel id, connector, status, seconds since its last event or None)
    channels: list[tuple[int, str, str, float | None]] = field(default_factory=list)


async def gather_figures(engine: AsyncEngine, now: datetime) -> Figures:
    async with engine.connect() as conn:
        return Figures(
            deliveries=await deliveries_by_result(conn, now - WINDOW),
            ingest_lag=_age(now, await oldest(conn, receipt_t, receipt_t.c.received_at)),
            outbox_depth=await outbox_depth(conn),
            outbox_oldest_age=_age(now, await oldest(conn, outbox_t, outbox_t.c.created_at)),
            send_failures=await send_failures(conn, now - WINDOW),
            channels=await channel_ages(conn, now),
        )


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0


async def deliveries_by_result(conn: AsyncConnection, since: datetime) -> dict[str, int]:
    recent = (sa.select(receipt_t.c.status, receipt_t.c.received_at)
              .order_by(receipt_t.c.id.desc()).limit(RECENT_ROWS).subquery())
    rows = await conn.execute(sa.select(recent.c.status, sa.func.count())
                              .where(recent.c.received_at >= since).group_by(recent.c.status))
    return {**dict.fromkeys(DELIVERY_RESULTS, 0), **{status: n for status, n in rows}}


async def oldest(conn: AsyncConnection, table: sa.Table, column: sa.Column) -> datetime | None:
    """When the oldest pending row was made; the (status, id) indexes find it without a scan."""
    return await conn.scalar(sa.select(column).where(table.c.status == "pending")
                             .order_by(table.c.id).limit(1))


async def outbox_depth(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(sa.select(outbox_t.c.status, sa.func.count())
                              .where(outbox_t.c.status.in_(("pending", "sending"))).group_by(outbox_t.c.status))
    return {"pending": 0, "sending": 0, **{status: n for status, n in rows}}


async def send_failures(conn: AsyncConnection, since: datetime) -> dict[str, int]:
    """Failed sends of the last hour by reason. An entry records no failure time: the time its
    last attempt was due (next_attempt_at) is when it failed, give or take the send itself."""
    recent = (sa.select(outbox_t.c.status, outbox_t.c.next_attempt_at, outbox_t.c.last_error)
              .order_by(outbox_t.c.id.desc()).limit(RECENT_ROWS).subquery())
    rows = await conn.execute(sa.select(recent.c.last_error, sa.func.count())
                              .where(recent.c.status == "failed", recent.c.next_attempt_at >= since)
                              .group_by(recent.c.last_error))
    counts: dict[str, int] = {}
    for text, n in rows:
        label = failure_reason(text)
        label = label if label in counts or len(counts) < MAX_REASONS else "other"
        counts[label] = counts.get(label, 0) + n
    return counts


def failure_reason(text: str | None) -> str:
    """A short, stable label from an error text: what comes before the first ':' or '('."""
    text = GAVE_UP.sub("", (text or "").strip())
    head = re.split(r"[:(\n]", text, maxsplit=1)[0].strip()
    return redact(head)[:40] or "unknown"


async def channel_ages(conn: AsyncConnection, now: datetime) -> list[tuple[int, str, str, float | None]]:
    rows = await conn.execute(sa.select(channel_t.c.id, channel_t.c.connector, channel_t.c.status,
                                        channel_t.c.last_event_at).order_by(channel_t.c.id))
    return [(r.id, r.connector, r.status, None if r.last_event_at is None else _age(now, r.last_event_at))
            for r in rows]


def render_metrics(figures: Figures) -> bytes:
    """The Prometheus exposition of one scrape's figures."""
    registry = CollectorRegistry(auto_describe=True)
    _labelled(registry, "socialcrm_webhook_deliveries_last_hour", "Webhook deliveries received in the last hour, "
              "by processing result", "result", figures.deliveries)
    Gauge("socialcrm_ingest_lag_seconds", "Age of the oldest webhook delivery not yet processed",
          registry=registry).set(figures.ingest_lag)
    _labelled(registry, "socialcrm_outbox_depth", "Outgoing replies not yet sent", "status", figures.outbox_depth)
    Gauge("socialcrm_outbox_oldest_pending_age_seconds", "Age of the oldest reply waiting to be sent",
          registry=registry).set(figures.outbox_oldest_age)
    _labelled(registry, "socialcrm_send_failures_last_hour", "Replies given up on in the last hour, by reason",
              "reason", figures.send_failures)
    _channel_gauges(registry, figures.channels)
    return generate_latest(registry)


def _labelled(registry: CollectorRegistry, name: str, doc: str, label: str, values: dict[str, int]) -> None:
    gauge = Gauge(name, doc, [label], registry=registry)
    for key, value in values.items():
        gauge.labels(key).set(value)


def _channel_gauges(registry: CollectorRegistry, channels: list[tuple[int, str, str, float | None]]) -> None:
    """A channel that never received an event has no age: it is left out of that gauge (alert on
    absence), but its status is always there."""
    age = Gauge("socialcrm_channel_last_event_age_seconds", "Seconds since the channel's last event",
                ["channel_id", "connector"], registry=registry)
    status = Gauge("socialcrm_channel_status", "1 for the channel's current state",
                   ["channel_id", "connector", "status"], registry=registry)
    for channel_id, connector, state, seconds in channels:
        status.labels(str(channel_id), connector, state).set(1)
        if seconds is not None:
            age.labels(str(channel_id), connector).set(seconds)
