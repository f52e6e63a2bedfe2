"""Channel health: the signals that catch silent failures, computed from the existing tables.

Per channel: last event received, last successful poll and its lag, the last poll error,
webhook deliveries of the last hour by result, the outbox (pending, oldest pending, failed sends
and error rate of the last hour) and the channel's own state. `warnings_for` turns those into
words an admin acts on. Nothing here renders HTML or knows a connector by name.

The outbox has no "failed at" column, so a failed send counts in the hour it was queued.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models
from socialcrm.errors import SendError
from socialcrm.models import utcnow

HOUR = timedelta(hours=1)
GAP_SAMPLE = 50              # inbound messages the usual gap is measured over
GAP_MIN_MESSAGES = 10        # fewer than this: no idea what "usual" is, no warning
GAP_FACTOR = 3
GAP_FLOOR = HOUR
ERROR_RATE_LIMIT = 0.20
ERROR_RATE_MIN_ATTEMPTS = 5
WEBHOOK_INFO_TIMEOUT = 5.0

channel_t = models.Channel.__table__
cursor_t = models.PollCursor.__table__
receipt_t = models.Receipt.__table__
outbox_t = models.OutboxEntry.__table__
message_t = models.Message.__table__


@dataclass
class ChannelHealth:
    channel_id: int
    name: str
    connector: str
    status: str
    status_reason: str
    poll_enabled: bool
    last_event_at: datetime | None = None
    last_poll_at: datetime | None = None
    poll_lag: timedelta | None = None
    last_poll_error: str = ""
    deliveries: dict[str, int] = field(default_factory=lambda: {"processed": 0, "failed": 0, "pending": 0})
    outbox_pending: int = 0
    oldest_pending_age: timedelta | None = None
    sends_hour: int = 0
    failed_sends_hour: int = 0
    usual_gap: timedelta | None = None
    inbound_sampled: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def error_rate(self) -> float | None:
        return self.failed_sends_hour / self.sends_hour if self.sends_hour else None

    @property
    def needs_reauth(self) -> bool:
        return self.status == "needs_reauth"


def usual_gap(times: list[datetime]) -> timedelta | None:
    """The median gap between consecutive times (any order); None for fewer than two."""
    ordered = sorted(times)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ordered)]
    return timedelta(seconds=statistics.median(gaps)) if gaps else None


def silence_limit(gap: timedelta) -> timedelta:
    """How long a channel may be quiet before it is suspicious: 3 usual gaps, at least an hour."""
    return max(GAP_FACTOR * gap, GAP_FLOOR)


def warnings_for(h: ChannelHealth, now: datetime) -> list[str]:
    """The warnings an admin should act on, in words."""
    found: list[str] = []
    if h.status == "needs_reauth":
        found.append(f"Needs re-authorisation: {h.status_reason or 'the platform rejected the credentials'}")
    if h.status == "paused":
        found.append("Paused: no events are fetched and no replies are sent")
    if _too_quiet(h, now):
        found.append(f"No events for {_words(now - h.last_event_at)} (usually one every "  # type: ignore[operator]
                     f"{_words(h.usual_gap)})")
    rate = h.error_rate
    if rate is not None and h.sends_hour >= ERROR_RATE_MIN_ATTEMPTS and rate > ERROR_RATE_LIMIT:
        found.append(f"Failing sends: {h.failed_sends_hour} of {h.sends_hour} in the last hour failed")
    if h.last_poll_error:
        found.append(f"Last poll failed: {h.last_poll_error}")
    return found


def _too_quiet(h: ChannelHealth, now: datetime) -> bool:
    if h.usual_gap is None or h.last_event_at is None or h.inbound_sampled < GAP_MIN_MESSAGES:
        return False
    return now - h.last_event_at > silence_limit(h.usual_gap)


def _words(delta: timedelta | None) -> str:
    if delta is None:
        return "?"
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min" if delta.total_seconds() >= 60 else f"{int(delta.total_seconds())} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


async def channel_health(engine: AsyncEngine, now: datetime | None = None) -> list[ChannelHealth]:
    """Every channel's signals and warnings, ordered by name."""
    now = now or utcnow()
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(channel_t).order_by(channel_t.c.name, channel_t.c.id))).all()
        found = [await _one(conn, row, now) for row in rows]
    for h in found:
        h.warnings = warnings_for(h, now)
    return found


async def _one(conn: AsyncConnection, row: Any, now: datetime) -> ChannelHealth:
    h = ChannelHealth(row.id, row.name, row.connector, row.status, row.status_reason, row.poll_enabled,
                      last_event_at=row.last_event_at)
    await _poll(conn, h, now)
    h.deliveries.update(await _deliveries(conn, row.id, now))
    await _outbox(conn, h, now)
    times = await _inbound_times(conn, row.id)
    h.usual_gap, h.inbound_sampled = usual_gap(times), len(times)
    return h


async def _poll(conn: AsyncConnection, h: ChannelHealth, now: datetime) -> None:
    cursor = (await conn.execute(sa.select(cursor_t).where(cursor_t.c.channel_id == h.channel_id))).first()
    if cursor is None:
        return
    h.last_poll_at, h.last_poll_error = cursor.last_success_at, cursor.last_error or ""
    if h.poll_enabled and cursor.last_success_at is not None:
        h.poll_lag = now - cursor.last_success_at


async def _deliveries(conn: AsyncConnection, channel_id: int, now: datetime) -> dict[str, int]:
    query = (sa.select(receipt_t.c.status, sa.func.count()).group_by(receipt_t.c.status)
             .where(receipt_t.c.channel_id == channel_id, receipt_t.c.received_at >= now - HOUR))
    return {status: count for status, count in (await conn.execute(query)).all()}


async def _outbox(conn: AsyncConnection, h: ChannelHealth, now: datetime) -> None:
    mine = outbox_t.c.channel_id == h.channel_id
    waiting = outbox_t.c.status.in_(("pending", "sending"))
    pending = (await conn.execute(sa.select(sa.func.count(), sa.func.min(outbox_t.c.created_at))
                                  .where(mine, waiting))).one()
    h.outbox_pending = pending[0]
    h.oldest_pending_age = now - pending[1] if pending[1] is not None else None
    sent = sa.and_(outbox_t.c.status == "sent", outbox_t.c.sent_at >= now - HOUR)
    failed = sa.and_(outbox_t.c.status == "failed", outbox_t.c.created_at >= now - HOUR)
    h.failed_sends_hour = await conn.scalar(sa.select(sa.func.count()).where(mine, failed)) or 0
    h.sends_hour = h.failed_sends_hour + (await conn.scalar(sa.select(sa.func.count()).where(mine, sent)) or 0)


async def _inbound_times(conn: AsyncConnection, channel_id: int) -> list[datetime]:
    query = (sa.select(message_t.c.created_at)
             .where(message_t.c.channel_id == channel_id, message_t.c.direction == "in")
             .order_by(message_t.c.created_at.desc()).limit(GAP_SAMPLE))
    return [r.created_at for r in (await conn.execute(query)).all()]


@dataclass
class WebhookStatus:
    """What the platform says about our subscription (Telegram getWebhookInfo)."""

    url: str = ""
    pending_update_count: int | None = None
    last_error_message: str = ""
    problem: str = ""


async def webhook_status(connector: Any) -> WebhookStatus | None:
    """Ask a connector that offers `webhook_info()`; None when it has none. Never raises."""
    if not hasattr(connector, "webhook_info"):
        return None
    try:
        info = await asyncio.wait_for(connector.webhook_info(), WEBHOOK_INFO_TIMEOUT)
    except SendError as exc:
        return WebhookStatus(problem=f"Could not ask the platform about the webhook: {exc}")
    except TimeoutError:
        return WebhookStatus(problem="The platform did not answer about the webhook in time")
    count = info.get("pending_update_count")
    return WebhookStatus(str(info.get("url") or ""), count if isinstance(count, int) else None,
                         str(info.get("last_error_message") or ""))
