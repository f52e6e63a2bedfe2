"""Channel health: the signals that catch silent failures, computed from the existing tables.

Per channel: last event received, last successful poll and its lag, the last poll error,
webhook deliveries of the last hour by result, the outbox (pending, oldest pending, failed sends
and error rate of the last hour) and the channel's own state. `warnings_for` turns those into
words an admin acts on. Nothing here renders HTML or knows a connector by name.

The outbox has no "failed at" column, so a failed send counts in the hour it was queued.

Two signals come from elsewhere: what the platform says about the channel's access
(`Connector.platform_health()`: token expiry and validity, webhook subscription), asked live with
a timeout, and webhook deliveries rejected (bad signature, malformed body) in the last hour,
counted in memory by this process (`Rejections`, one per engine, i.e. per running app): a
rejected delivery is never stored, so the database cannot count it.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models
from socialcrm.channels import STOPPED
from socialcrm.errors import AuthFailed, SendError
from socialcrm.models import utcnow

HOUR = timedelta(hours=1)
GAP_SAMPLE = 50              # inbound messages the usual gap is measured over
GAP_MIN_MESSAGES = 10        # fewer than this: no idea what "usual" is, no warning
GAP_FACTOR = 3
GAP_FLOOR = HOUR
ERROR_RATE_LIMIT = 0.20
ERROR_RATE_MIN_ATTEMPTS = 5
WEBHOOK_INFO_TIMEOUT = 5.0
PLATFORM_HEALTH_TIMEOUT = 5.0
TOKEN_EXPIRY_WARNING = timedelta(days=7)
REJECTIONS_LIMIT = 10        # more than this in an hour: someone sends junk, or our secret is wrong

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
    #: Webhook deliveries rejected in the last hour by this process: at /webhooks/{connector}/{id}
    #: (this channel's own URL) and at the connector's shared /webhooks/{connector}.
    rejected_channel_hour: int = 0
    rejected_connector_hour: int = 0
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
    if h.rejected_channel_hour > REJECTIONS_LIMIT:
        found.append(f"{h.rejected_channel_hour} webhook deliveries to this channel's URL were rejected in the "
                     f"last hour (bad signature or malformed body): check the app secret")
    if h.rejected_connector_hour > REJECTIONS_LIMIT:
        found.append(f"{h.rejected_connector_hour} webhook deliveries to /webhooks/{h.connector} were rejected "
                     f"in the last hour (bad signature or malformed body): check the app secret")
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
    counter = rejections_for(engine)
    for h in found:
        h.rejected_channel_hour = counter.count(("channel", h.channel_id))
        h.rejected_connector_hour = counter.count(("connector", h.connector))
        h.warnings = warnings_for(h, now)
    return found


class Rejections:
    """Webhook deliveries rejected per key over the last hour: a deque of monotonic times per key,
    pruned on every use. Nothing about the delivery itself is kept."""

    def __init__(self, window: float = HOUR.total_seconds(), clock: Any = time.monotonic) -> None:
        self.window, self.clock = window, clock
        self._times: dict[Any, deque[float]] = {}

    def add(self, *keys: Any) -> None:
        now = self.clock()
        for key in keys:
            self._times.setdefault(key, deque()).append(now)
            self._prune(key, now)

    def count(self, key: Any) -> int:
        self._prune(key, self.clock())
        return len(self._times.get(key, ()))

    def _prune(self, key: Any, now: float) -> None:
        times = self._times.get(key)
        if times is None:
            return
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._times[key]


_REJECTIONS: weakref.WeakKeyDictionary[AsyncEngine, Rejections] = weakref.WeakKeyDictionary()


def rejections_for(engine: AsyncEngine) -> Rejections:
    """The process-local counter of the app running on this engine (one engine per Core)."""
    counter = _REJECTIONS.get(engine)
    if counter is None:
        counter = _REJECTIONS[engine] = Rejections()
    return counter


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
class PlatformAccess:
    """What the platform says about the channel's access (`Connector.platform_health()`)."""

    token_valid: bool | None = None
    token_expires_at: datetime | None = None
    token_never_expires: bool = False
    scopes: list[str] = field(default_factory=list)
    subscribed: bool | None = None
    subscribed_fields: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class WebhookStatus:
    """What the platform says about our subscription (Telegram getWebhookInfo) and, in `access`,
    about the channel's token and webhook subscription (Meta debug_token, subscribed_apps)."""

    url: str = ""
    pending_update_count: int | None = None
    last_error_message: str = ""
    problem: str = ""
    has_webhook_info: bool = True
    access: PlatformAccess | None = None


def access_from(info: dict[str, Any], now: datetime) -> PlatformAccess:
    """`platform_health()`'s answer, with the warnings it calls for."""
    expires = info.get("token_expires_at")
    access = PlatformAccess(
        token_valid=info["token_valid"] if isinstance(info.get("token_valid"), bool) else None,
        token_expires_at=expires if isinstance(expires, datetime) else None,
        token_never_expires="token_expires_at" in info and expires is None,
        scopes=[str(s) for s in info.get("scopes") or []],
        subscribed=info["subscribed"] if isinstance(info.get("subscribed"), bool) else None,
        subscribed_fields=[str(f) for f in info.get("subscribed_fields") or []])
    if access.token_valid is False:
        access.warnings.append("The token is no longer valid: the platform rejects it; re-authorise the channel")
    elif access.token_expires_at is not None:
        left = access.token_expires_at - now
        if left <= timedelta(0):
            access.warnings.append("The token has expired: re-authorise the channel")
        elif left <= TOKEN_EXPIRY_WARNING:
            days = max(1, round(left.total_seconds() / 86400))
            access.warnings.append(f"The token expires in {days} day{'s' if days != 1 else ''} "
                                   f"({access.token_expires_at:%Y-%m-%d %H:%M} UTC): renew it before then")
    if access.subscribed is False:
        access.warnings.append("The app is not subscribed to this page's webhooks (Meta stops sending): "
                               "subscribe it again")
    return access


async def platform_access(connector: Any, now: datetime | None = None) -> PlatformAccess | None:
    """Ask `platform_health()` with a timeout; None when the platform says nothing. Never raises."""
    try:
        info = await asyncio.wait_for(connector.platform_health(), PLATFORM_HEALTH_TIMEOUT)
    except AuthFailed as exc:
        return PlatformAccess(token_valid=False, warnings=[f"The token is no longer valid: {exc}"])
    except SendError as exc:
        return PlatformAccess(warnings=[f"Could not ask the platform about the channel's access: {exc}"])
    except TimeoutError:
        return PlatformAccess(warnings=["The platform did not answer about the channel's access in time"])
    if not info:
        return None
    return access_from(info, now or utcnow())


async def webhook_status(connector: Any, now: datetime | None = None) -> WebhookStatus | None:
    """Ask a connector what the platform says: `webhook_info()` when it offers it, and
    `platform_health()` of the contract. None when the platform says nothing. Never raises."""
    access = await platform_access(connector, now) if hasattr(connector, "platform_health") else None
    if not hasattr(connector, "webhook_info"):
        return WebhookStatus(has_webhook_info=False, access=access) if access else None
    try:
        info = await asyncio.wait_for(connector.webhook_info(), WEBHOOK_INFO_TIMEOUT)
    except SendError as exc:
        return WebhookStatus(problem=f"Could not ask the platform about the webhook: {exc}", access=access)
    except TimeoutError:
        return WebhookStatus(problem="The platform did not answer about the webhook in time", access=access)
    count = info.get("pending_update_count")
    return WebhookStatus(str(info.get("url") or ""), count if isinstance(count, int) else None,
                         str(info.get("last_error_message") or ""), access=access)


#: Platform answers about access change slowly and cost a call per channel: the admin banner
#: reuses them for a while instead of asking on every page view.
PLATFORM_CACHE_SECONDS = 600.0
_platform_cache: dict[int, tuple[float, list[str]]] = {}


async def cached_platform_warnings(channels: list[Any]) -> list[str]:
    """"Channel X: ..." for expiring or rejected tokens and lost subscriptions, for the banner."""
    out: list[str] = []
    for ch in channels:
        if ch.row.status in STOPPED:
            continue
        cached = _platform_cache.get(ch.id)
        if cached is None or time.monotonic() - cached[0] > PLATFORM_CACHE_SECONDS:
            access = await platform_access(ch.connector)
            cached = (time.monotonic(), access.warnings if access else [])
            _platform_cache[ch.id] = cached
        out += [f"Channel {ch.row.name}: {w}" for w in cached[1]]
    return out
