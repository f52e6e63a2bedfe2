"""APScheduler jobs in every server process: outbox, polls, SLA tick, sweeps.

Polling follows Home Assistant's coordinator pattern: the connector only implements
poll(cursor); here we own the interval, the stored cursor (advanced only in the same
transaction that commits the events), backoff honouring rate limits, one run per channel at
a time, and one log line when a channel starts failing and one when it recovers.

Several processes on one PostgreSQL: a poll holds an advisory lock on its channel from
reading the cursor to saving it, so a channel is polled by one process at a time; the outbox
claims entries with SKIP LOCKED; every other interval job runs once per period across all
processes (`once_per_period`), which build_scheduler applies to each job it adds unless the
job's id is in EVERY_PROCESS.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from socialcrm import coordination, models, sla_policies
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
        await asyncio.gather(*(self.poll_channel(c, only_if_due=True) for c in due))

    async def _is_due(self, channel: LoadedChannel) -> bool:
        async with self.core.engine.connect() as conn:
            at = (await conn.execute(sa.select(cursor_t.c.next_poll_at)
                                     .where(cursor_t.c.channel_id == channel.id))).scalar()
        return at is None or at <= utcnow()

    async def poll_channel(self, channel: LoadedChannel, only_if_due: bool = False) -> int:
        """One poll; returns the number of events committed. Never runs twice at once per channel,
        in this process (an asyncio lock) nor across processes (an advisory lock held from reading
        the cursor to saving it). `only_if_due` re-checks the time under the lock, so a process
        that waited behind another one's poll does not poll again right after it."""
        lock = self._locks.setdefault(channel.id, asyncio.Lock())
        if lock.locked():
            return 0
        async with lock, coordination.exclusive(self.core.engine, "poll", channel.id) as mine:
            if not mine:
                return 0
            cursor, failures, next_at = await self._cursor(channel.id)
            if only_if_due and next_at is not None and next_at > utcnow():
                return 0
            return await self._poll_locked(channel, cursor, failures)

    async def _poll_locked(self, channel: LoadedChannel, cursor: str | None, failures: int) -> int:
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

    async def _cursor(self, channel_id: int) -> tuple[str | None, int, datetime | None]:
        async with self.core.engine.connect() as conn:
            row = (await conn.execute(sa.select(cursor_t.c.cursor, cursor_t.c.failures, cursor_t.c.next_poll_at)
                                      .where(cursor_t.c.channel_id == channel_id))).first()
        return (row.cursor, row.failures, row.next_poll_at) if row else (None, 0, None)

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
    """Countdowns move: raise what is about to breach, tell the inboxes of teams with waiting
    conversations to refresh."""
    await sla_policies.raise_and_announce(core.engine, core.hub.publish, utcnow())
    async with core.engine.connect() as conn:
        teams = (await conn.execute(sa.select(conversation_t.c.team_id).distinct().where(
            conversation_t.c.status == "open", conversation_t.c.waiting_since.is_not(None)))).scalars().all()
    for team in teams:
        core.hub.publish({"type": "inbox", "team_id": team})


#: Jobs every process runs on its own schedule: they share the work safely by themselves (the
#: outbox claims entries with SKIP LOCKED, polls lock their channel). Every other interval job
#: added in build_scheduler runs once per period across all processes.
EVERY_PROCESS = frozenset({"outbox", "poll"})


def once_per_period(core: Core, name: str, fn: Callable[..., Any], every: timedelta) -> Callable[..., Awaitable[None]]:
    """Wrap a job so that, of all processes sharing the database, one runs it per period."""
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> None:
        if not await coordination.claim_period(core.engine, name, every, utcnow()):
            return
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            await result

    return run


def coordinate_periodic_jobs(scheduler: AsyncIOScheduler, core: Core) -> None:
    """Make each interval job not in EVERY_PROCESS run once per period across processes; its
    period is its own interval. Applied to the jobs as added, so a new add_job line needs nothing more."""
    for job in scheduler.get_jobs():
        if job.id not in EVERY_PROCESS and isinstance(job.trigger, IntervalTrigger):
            job.modify(func=once_per_period(core, job.id, job.func, job.trigger.interval))


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
    scheduler.add_job("socialcrm.merge:detect", "interval", seconds=60, id="merge-suggestions", args=[core.engine])
    scheduler.add_job("socialcrm.snooze:wake_due", "interval", seconds=30, id="wake-snoozed", args=[core])
    coordinate_periodic_jobs(scheduler, core)   # keep last: it covers every add_job line above
    return scheduler
