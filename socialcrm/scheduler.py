"""APScheduler jobs in the server process: outbox, polls, SLA tick.

Polling follows Home Assistant's coordinator pattern: the connector only implements
poll(cursor); here we own the interval, the stored cursor (advanced only in the same
transaction that commits the events), backoff honouring rate limits, one run per channel at
a time, and one log line when a channel starts failing and one when it recovers.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from socialcrm import models
from socialcrm.channels import LoadedChannel, set_status
from socialcrm.db import insert, optimize
from socialcrm.errors import AuthFailed, RateLimited, SendError
from socialcrm.models import utcnow
from socialcrm.outbox import backoff_seconds
from socialcrm.receipts import ingest_events

if TYPE_CHECKING:
    from socialcrm.core import Core

log = logging.getLogger(__name__)
cursor_t = models.PollCursor.__table__
conversation_t = models.Conversation.__table__
channel_t = models.Channel.__table__
POLL_CHECK_SECONDS = 5.0


class Poller:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._locks: dict[int, asyncio.Lock] = {}

    async def poll_due(self) -> None:
        """Poll every enabled channel whose next poll time has come, channels in parallel."""
        channels = [c for c in (await self.core.channels.all()).values()
                    if c.row.poll_enabled and c.row.status in ("active", "failing")]
        due = [c for c in channels if await self._is_due(c)]
        await asyncio.gather(*(self.poll_channel(c) for c in due))

    async def _is_due(self, channel: LoadedChannel) -> bool:
        async with self.core.engine.connect() as conn:
            at = (await conn.execute(sa.select(cursor_t.c.next_poll_at)
                                     .where(cursor_t.c.channel_id == channel.id))).scalar()
        return at is None or at <= utcnow()

    async def poll_channel(self, channel: LoadedChannel) -> int:
        """One poll; returns the number of events committed. Never runs twice at once per channel."""
        lock = self._locks.setdefault(channel.id, asyncio.Lock())
        if lock.locked():
            return 0
        async with lock:
            cursor, failures = await self._cursor(channel.id)
            try:
                events, next_cursor = await channel.connector.poll(cursor)
                events = await channel.connector.hydrate(events)
            except SendError as exc:
                await self._failed(channel, exc, failures)
                return 0
            async with self.core.engine.begin() as conn:
                result, assigned = await ingest_events(conn, channel, events)
                await self._save_cursor(conn, channel.id, next_cursor, failures)
            if failures:
                log.info("polling %s (channel %s) recovered", channel.row.connector, channel.id)
            self.core.announce(result.conversations, channel.info.team_id, assigned)
            return len(events)

    async def _cursor(self, channel_id: int) -> tuple[str | None, int]:
        async with self.core.engine.connect() as conn:
            row = (await conn.execute(sa.select(cursor_t.c.cursor, cursor_t.c.failures)
                                      .where(cursor_t.c.channel_id == channel_id))).first()
        return (row.cursor, row.failures) if row else (None, 0)

    async def _save_cursor(self, conn: sa.ext.asyncio.AsyncConnection, channel_id: int, cursor: str | None,
                           failures: int) -> None:
        now = utcnow()
        values = {"cursor": cursor, "last_success_at": now, "last_error": "", "failures": 0,
                  "next_poll_at": now + timedelta(seconds=self.core.settings.poll_interval_seconds)}
        await conn.execute(insert(conn, cursor_t).values(channel_id=channel_id, **values)
                           .on_conflict_do_update(index_elements=["channel_id"], set_=values))

    async def _failed(self, channel: LoadedChannel, exc: SendError, failures: int) -> None:
        if isinstance(exc, AuthFailed):
            await set_status(self.core.engine, channel.id, "needs_reauth", str(exc))
            self.core.channels.invalidate()
        delay = exc.retry_after if isinstance(exc, RateLimited) else backoff_seconds(failures + 1)
        if failures == 0:
            log.warning("polling %s (channel %s) failing: %s", channel.row.connector, channel.id, exc)
        values = {"last_error": str(exc)[:500], "failures": failures + 1,
                  "next_poll_at": utcnow() + timedelta(seconds=delay)}
        async with self.core.engine.begin() as conn:
            await conn.execute(insert(conn, cursor_t).values(channel_id=channel.id, **values)
                               .on_conflict_do_update(index_elements=["channel_id"], set_=values))


async def sla_tick(core: Core) -> None:
    """Countdowns move: tell the inboxes of teams with waiting conversations to refresh."""
    async with core.engine.connect() as conn:
        teams = (await conn.execute(sa.select(conversation_t.c.team_id).distinct().where(
            conversation_t.c.status == "open", conversation_t.c.waiting_since.is_not(None)))).scalars().all()
    for team in teams:
        core.hub.publish({"type": "inbox", "team_id": team})


def build_scheduler(core: Core) -> AsyncIOScheduler:
    settings = core.settings
    scheduler = AsyncIOScheduler(timezone=timezone.utc, job_defaults={
        "max_instances": 1, "coalesce": True, "misfire_grace_time": 30})
    scheduler.add_job(core.dispatch_outbox, "interval", seconds=settings.outbox_interval_seconds, id="outbox")
    scheduler.add_job(core.poller.poll_due, "interval", seconds=POLL_CHECK_SECONDS, id="poll",
                      next_run_time=datetime.now(timezone.utc))
    scheduler.add_job(sla_tick, "interval", seconds=settings.sla_tick_seconds, id="sla", args=[core])
    scheduler.add_job(core.pipeline.sweep, "interval", seconds=60, id="receipts-sweep")
    scheduler.add_job(optimize, "interval", hours=1, id="db-optimize", args=[core.engine])
    return scheduler
