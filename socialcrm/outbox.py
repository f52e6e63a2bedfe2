"""Deliver queued replies through their channel's connector; never lose one, never fake "sent".

A message shows "sent" only after the platform accepted it and returned its id.

Channels are independent lanes: each channel with due replies gets its own task that claims
what its pacer lets it send in the next second, sends it (replies of one conversation in
order, different conversations concurrently) and claims again, so one channel's rate limit,
backlog or slow platform never holds up another. Each send waits its turn on the channel's
`Pacer` (socialcrm.pacing): the dispatcher stays below the platform's documented rate
instead of hammering into 429s, and after a 429 nothing of that channel starts before the
time the platform named. That hold is written on the refused entry, so every process sees it.

Entries are claimed with a lease (and FOR UPDATE SKIP LOCKED on PostgreSQL), so several
dispatchers never take the same entry. On PostgreSQL a process sends for a channel only
while it holds that channel's advisory lock (transaction-scoped, held while its lane runs), so two
processes never pace one channel at once; and since a send happens only under that lock,
an entry left "sending" when a new holder takes the lock belongs to a dispatcher that died
between the platform's answer and our record of it. The new holder re-sends it at once,
with the same idempotency key: delivery is at-least-once, exactly-once where the platform
honours the key (Mastodon's Idempotency-Key, the simulator) or reports our own reply back
as an echo (the echo and our record are merged into one message). Elsewhere (SQLite, or an
entry this process itself failed to record) the lease running out is what re-sends it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from socialcrm import models
from socialcrm.channels import ChannelStore, LoadedChannel, set_status
from socialcrm.connector import OutboundReply, Sent
from socialcrm.coordination import lock_key
from socialcrm.db import is_sqlite
from socialcrm.errors import AuthFailed, PermanentError, RateLimited, SendError
from socialcrm.ingest import apply_pending_for
from socialcrm.live import Hub
from socialcrm.models import utcnow
from socialcrm.pacing import PacedSender, Pacer, allowed_rate

log = logging.getLogger(__name__)
outbox_t = models.OutboxEntry.__table__
message_t = models.Message.__table__
channel_t = models.Channel.__table__
conversation_t = models.Conversation.__table__
pending_t = models.PendingChange.__table__

LEASE = timedelta(seconds=120)
BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0
MAX_ATTEMPTS = 12
CLAIM_BATCH = 50
#: A lane claims what the channel's pacer lets it start within this (at most ROUND_CAP), so a
#: lease never waits on pacing, and claims again when half of it is left.
ROUND = timedelta(seconds=1)
ROUND_CAP = 500
#: A lane gives its channel back after this many claims (about 30 s of a paced backlog), so
#: with more than MAX_LANES busy channels each gets its turn: the longest waiting go first.
MAX_ROUNDS = 60
#: Sends in flight at once on a paced channel (each to a different conversation): a platform
#: that takes 300 ms to answer still gets 80 a second. Unpaced channels send one at a time.
MAX_IN_FLIGHT = 64
#: Channels sending at once in one process: on PostgreSQL each lane holds a pooled connection
#: (its lock), and webhooks need the rest of the pool. The longest waiting channels go first.
MAX_LANES = 8
#: run_once waits this long for the lanes it started (looking for newly due channels every
#: RECHECK seconds meanwhile); longer ones go on in the background.
PASS_WAIT = 2.0
RECHECK = 0.25
#: Purpose of the PostgreSQL advisory lock a process holds while it sends for a channel
#: (keyed with the channel id, as socialcrm.coordination keys every lock).
DISPATCH_LOCK = "outbox-channel"
RATE_LIMIT_NOTE = "rate limited by the platform"


def backoff_seconds(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) of the step, capped."""
    step = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt - 1))
    return step * (0.5 + rng())


def _due(now: datetime) -> Any:
    return sa.or_(sa.and_(outbox_t.c.status == "pending", outbox_t.c.next_attempt_at <= now),
                  sa.and_(outbox_t.c.status == "sending", outbox_t.c.lease_until < now))


_SENDABLE = channel_t.c.status.in_(("active", "failing"))


class Dispatcher:
    def __init__(self, engine: AsyncEngine, channels: ChannelStore, hub: Hub,
                 clock: Callable[[], datetime] = utcnow, rng: Callable[[], float] = random.random,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.engine, self.channels, self.hub, self.clock, self.rng = engine, channels, hub, clock, rng
        self.sleep = sleep
        self.wake = asyncio.Event()
        self.pacers: dict[int, Pacer] = {}
        self._lanes: dict[int, asyncio.Task[int]] = {}
        self._watched: set[asyncio.Task[int]] = set()   # lanes a run_once is waiting for
        #: Entries whose send raised after it may have reached the platform, in this process:
        #: left to their lease rather than re-sent at once (see _reclaim_orphans).
        self._doubtful: set[int] = set()
        self._to_record: list[tuple[Any, Sent, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._stopping = False

    # -- passes and lanes ---------------------------------------------------------------------
    async def run_once(self, wait: float | None = PASS_WAIT) -> int:
        """Start a lane for each channel with due replies that has none running, and wait for
        them (up to `wait` seconds; None: until done), starting lanes for channels that become
        due meanwhile; returns how many entries the finished lanes attempted."""
        pending = set(await self._start_due_lanes())
        if not pending or wait == 0:
            return 0
        deadline = None if wait is None else asyncio.get_running_loop().time() + wait
        finished: set[asyncio.Task[int]] = set()
        self._watched |= pending
        try:
            while pending:
                left = None if deadline is None else deadline - asyncio.get_running_loop().time()
                if left is not None and left <= 0:
                    break
                done, pending = await asyncio.wait(pending, timeout=RECHECK if left is None else min(RECHECK, left))
                finished |= done
                if pending:
                    started = set(await self._start_due_lanes())
                    self._watched |= started
                    pending |= started
        finally:
            self._watched -= finished | pending
        failures = [t.exception() for t in finished if not t.cancelled() and t.exception() is not None]
        if failures:
            raise failures[0]  # type: ignore[misc]
        return sum(t.result() for t in finished if not t.cancelled())

    async def _start_due_lanes(self) -> list[asyncio.Task[int]]:
        if self._stopping:
            return []
        waiting = [cid for cid in await self.due_channels() if cid not in self._lanes]
        return [self._start_lane(cid) for cid in waiting[:max(0, MAX_LANES - len(self._lanes))]]

    def _start_lane(self, channel_id: int) -> asyncio.Task[int]:
        task = asyncio.create_task(self._lane(channel_id), name=f"outbox-channel-{channel_id}")
        self._lanes[channel_id] = task

        def finished(t: asyncio.Task[int]) -> None:
            self._lanes.pop(channel_id, None)
            if t.cancelled() or t in self._watched:
                return  # run_once raises its error
            if t.exception() is not None:
                log.error("outbox lane of channel %s failed", channel_id, exc_info=t.exception())

        task.add_done_callback(finished)
        return task

    async def _lane(self, channel_id: int) -> int:
        """Send for one channel, claiming more as its pacer gets through what it has, until
        nothing of it is due now or the platform refused us; returns how many were attempted."""
        async with self._channel_turn(channel_id) as mine:
            if not mine:
                return 0  # another process is sending for this channel right now
            pacer = self._pacer(channel_id, await self.channels.get(channel_id))
            await self._reclaim_orphans(channel_id)
            sender = PacedSender(pacer, self.deliver, _conversation_key, MAX_IN_FLIGHT if pacer.rate else 1,
                                 lambda entry: self._doubtful.add(entry.id))
            total = 0
            try:
                for _ in range(MAX_ROUNDS):
                    held = await self._held_until(channel_id)
                    if held is not None:
                        pacer.hold_until(held)
                    if self._stopping or sender.stopped or pacer.is_held(beyond=ROUND):
                        break  # refused, or held past this round: the queue itself carries the hold
                    limit = pacer.per(ROUND, ROUND_CAP) - sender.waiting
                    if limit > 0:
                        entries = await self.claim(channel_id, limit)
                        if not entries:
                            break  # nothing more is due: let what runs finish
                        sender.add(entries)
                        total += len(entries)
                    # Claim again when what is left to start would run out within half a round.
                    await sender.wait_for_room(pacer.per(ROUND / 2, ROUND_CAP) if pacer.rate else 0)
            finally:
                unstarted, errors = await sender.finish()
                await self._release(unstarted)
            if errors:
                raise errors[0]
            return total

    def _pacer(self, channel_id: int, channel: LoadedChannel | None) -> Pacer:
        rate = allowed_rate(channel.connector) if channel is not None else None
        pacer = self.pacers.get(channel_id)
        if pacer is None:
            pacer = self.pacers[channel_id] = Pacer(rate, self.clock, self.sleep)
        pacer.set_rate(rate)
        return pacer

    @asynccontextmanager
    async def _channel_turn(self, channel_id: int) -> AsyncIterator[bool]:
        """PostgreSQL: this channel's advisory lock for one lane (transaction-scoped: it goes with
        the connection, whatever happens to this process), or False when another process has it.
        SQLite is one process, and this process runs one lane per channel."""
        if is_sqlite(self.engine):
            yield True
            return
        async with self.engine.connect() as conn, conn.begin():
            mine = await conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(*lock_key(DISPATCH_LOCK, channel_id))))
            yield bool(mine)

    async def due_channels(self) -> list[int]:
        """Channels with replies due now, the longest waiting first. On PostgreSQL also those with
        a reply being sent, which may be an orphan (its round takes the lock only if nobody has it)."""
        due = _due(self.clock())
        if not is_sqlite(self.engine):
            due = sa.or_(due, outbox_t.c.status == "sending")
        async with self.engine.connect() as conn:
            first_due = sa.func.min(outbox_t.c.next_attempt_at)
            rows = await conn.execute(
                sa.select(outbox_t.c.channel_id).join(channel_t, channel_t.c.id == outbox_t.c.channel_id)
                .where(due, _SENDABLE).group_by(outbox_t.c.channel_id).order_by(first_due))
            return list(rows.scalars().all())

    async def _held_until(self, channel_id: int) -> datetime | None:
        """The time a platform's rate limit named for this channel, if it is still ahead (any process)."""
        async with self.engine.connect() as conn:
            return await conn.scalar(sa.select(sa.func.max(outbox_t.c.next_attempt_at)).where(
                outbox_t.c.channel_id == channel_id, outbox_t.c.status == "pending",
                outbox_t.c.next_attempt_at > self.clock(), outbox_t.c.last_error.startswith(RATE_LIMIT_NOTE)))

    async def _reclaim_orphans(self, channel_id: int) -> None:
        """PostgreSQL, under the channel's lock: an entry still "sending" was left by a dispatcher
        that died mid-send (sends happen only under this lock). Re-send it now, same key."""
        if is_sqlite(self.engine):
            return
        orphans = sa.and_(outbox_t.c.channel_id == channel_id, outbox_t.c.status == "sending")
        if self._doubtful:
            orphans = sa.and_(orphans, outbox_t.c.id.not_in(self._doubtful))
        async with self.engine.begin() as conn:
            ids = (await conn.execute(outbox_t.update().where(orphans).values(status="pending", lease_until=None)
                                      .returning(outbox_t.c.id))).scalars().all()
        if ids:
            log.warning("channel %s: %d replies were left mid-send by a stopped dispatcher; sending them "
                        "again with the same idempotency key", channel_id, len(ids))

    # -- claiming -------------------------------------------------------------------------------
    async def claim(self, channel_id: int | None = None, limit: int = CLAIM_BATCH) -> list[Any]:
        """Take due entries (of one channel, or of all), oldest first, under a lease."""
        now = self.clock()
        query = (sa.select(outbox_t.c.id).join(channel_t, channel_t.c.id == outbox_t.c.channel_id)
                 .where(_due(now), _SENDABLE).order_by(outbox_t.c.next_attempt_at, outbox_t.c.id).limit(limit)
                 .with_for_update(skip_locked=True, of=outbox_t))
        if channel_id is not None:
            query = query.where(outbox_t.c.channel_id == channel_id)
        async with self.engine.begin() as conn:
            ids = (await conn.execute(query)).scalars().all()
            if not ids:
                return []
            await conn.execute(outbox_t.update().where(outbox_t.c.id.in_(ids)).values(
                status="sending", lease_until=now + LEASE, attempts=outbox_t.c.attempts + 1))
            return list((await conn.execute(sa.select(outbox_t).where(outbox_t.c.id.in_(ids))
                                             .order_by(outbox_t.c.id))).all())

    async def _release(self, entries: list[Any]) -> None:
        """Give back claimed entries that were not attempted, without counting an attempt."""
        if not entries:
            return
        async with self.engine.begin() as conn:
            await conn.execute(outbox_t.update().where(outbox_t.c.id.in_([e.id for e in entries])).values(
                status="pending", lease_until=None, attempts=outbox_t.c.attempts - 1))

    # -- sending --------------------------------------------------------------------------------
    async def deliver(self, entry: Any) -> bool:
        """Send one entry; True when the channel may take the next one right away."""
        self._doubtful.discard(entry.id)
        channel = await self.channels.get(entry.channel_id)
        if channel is None:
            await self._fail(entry, "The channel was removed before this reply could be sent.")
            return True
        reply = OutboundReply(**entry.payload)
        try:
            sent = await channel.connector.send(reply)
        except RateLimited as exc:
            await self._rate_limited(entry, exc)
            return False
        except AuthFailed as exc:
            await self._auth_failed(entry, exc)
            return False
        except PermanentError as exc:
            await self._fail(entry, str(exc) or "The platform refused this reply.")
            return True
        except SendError as exc:
            await self._retry_later(entry, str(exc))
            return True
        except Exception as exc:  # a connector bug must not lose the reply
            log.exception("connector %s crashed while sending", channel.row.connector)
            await self._retry_later(entry, f"unexpected error: {type(exc).__name__}")
            return True
        await self.mark_sent(entry, sent)
        return True

    async def mark_sent(self, entry: Any, sent: Sent) -> None:
        """Record that the platform accepted it; returns once committed. Sends that finish
        together are recorded in one transaction (group commit), so recording keeps up with
        a platform that takes hundreds a second."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_record.append((entry, sent, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_queued())
        await done

    async def _record_queued(self) -> None:
        while self._to_record:
            batch, self._to_record = self._to_record[:CLAIM_BATCH], self._to_record[CLAIM_BATCH:]
            try:
                await self._record_sent([(entry, sent) for entry, sent, _ in batch])
            except Exception as exc:  # each waiting sender sees it: the entries stay "sending"
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)
            try:  # the inboxes refresh; the senders need not wait for that
                await self._publish_many([entry.message_id for entry, _, _ in batch])
            except Exception:
                log.exception("could not announce %d sent replies", len(batch))

    async def _record_sent(self, batch: list[tuple[Any, Sent]]) -> None:
        by_channel: dict[int, list[str]] = {}
        for entry, sent in batch:
            by_channel.setdefault(entry.channel_id, []).append(sent.external_id)
        async with self.engine.begin() as conn:
            for channel_id, external_ids in by_channel.items():
                # The platform may have echoed our reply before send() returned: keep one row, ours.
                await conn.execute(message_t.delete().where(
                    message_t.c.channel_id == channel_id, message_t.c.external_id.in_(external_ids),
                    message_t.c.id.not_in([e.message_id for e, _ in batch]), message_t.c.direction == "out"))
            await conn.execute(message_t.update().where(message_t.c.id == sa.bindparam("m_id")).values(
                external_id=sa.bindparam("m_external_id"), status="sent", error=""),
                [{"m_id": e.message_id, "m_external_id": s.external_id} for e, s in batch])
            await conn.execute(outbox_t.update().where(outbox_t.c.id == sa.bindparam("o_id")).values(
                status="sent", sent_at=sa.bindparam("o_sent_at"), lease_until=None, last_error=""),
                [{"o_id": e.id, "o_sent_at": s.sent_at} for e, s in batch])
            for channel_id, external_ids in by_channel.items():
                # A status may have arrived before send() returned the platform's id.
                waiting = (await conn.execute(sa.select(pending_t.c.target_external_id).distinct().where(
                    pending_t.c.channel_id == channel_id, pending_t.c.target_external_id.in_(external_ids)))).scalars()
                for external_id in waiting.all():
                    await apply_pending_for(conn, channel_id, external_id)

    async def _rate_limited(self, entry: Any, exc: RateLimited) -> None:
        until = self.clock() + timedelta(seconds=exc.retry_after)
        pacer = self.pacers.get(entry.channel_id)
        if pacer is not None:
            pacer.hold_until(until)
        async with self.engine.begin() as conn:
            await self._reschedule(conn, entry, until, f"{RATE_LIMIT_NOTE}; retrying after {until:%H:%M:%S} UTC")
            # Everything else queued on this channel must wait as long (never earlier than allowed).
            await conn.execute(outbox_t.update().where(
                outbox_t.c.channel_id == entry.channel_id, outbox_t.c.status.in_(("pending", "sending")),
                outbox_t.c.next_attempt_at < until).values(next_attempt_at=until))

    async def _auth_failed(self, entry: Any, exc: AuthFailed) -> None:
        await set_status(self.engine, entry.channel_id, "needs_reauth", str(exc))
        self.channels.invalidate()
        async with self.engine.begin() as conn:
            # Not counted as an attempt: it waits, unsent, until an admin re-authorises the channel.
            await conn.execute(outbox_t.update().where(outbox_t.c.id == entry.id).values(
                status="pending", attempts=outbox_t.c.attempts - 1, lease_until=None,
                last_error=f"channel needs re-authorisation: {exc}"))
        await self._publish(entry)

    async def _retry_later(self, entry: Any, reason: str) -> None:
        if entry.attempts + 1 >= MAX_ATTEMPTS:  # entry.attempts is the value before this claim
            await self._fail(entry, f"Gave up after {MAX_ATTEMPTS} attempts: {reason}")
            return
        until = self.clock() + timedelta(seconds=backoff_seconds(entry.attempts + 1, self.rng))
        async with self.engine.begin() as conn:
            await self._reschedule(conn, entry, until, reason)

    async def _reschedule(self, conn: Any, entry: Any, until: datetime, reason: str) -> None:
        await conn.execute(outbox_t.update().where(outbox_t.c.id == entry.id).values(
            status="pending", next_attempt_at=until, lease_until=None, last_error=reason))

    async def _fail(self, entry: Any, reason: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(outbox_t.update().where(outbox_t.c.id == entry.id).values(
                status="failed", lease_until=None, last_error=reason))
            await conn.execute(message_t.update().where(message_t.c.id == entry.message_id).values(
                status="failed", error=reason))
        await self._publish(entry)

    async def _publish(self, entry: Any) -> None:
        await self._publish_many([entry.message_id])

    async def _publish_many(self, message_ids: list[int]) -> None:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(conversation_t.c.id, conversation_t.c.team_id).distinct()
                                       .join(message_t, message_t.c.conversation_id == conversation_t.c.id)
                                       .where(message_t.c.id.in_(message_ids)))).all()
        for row in rows:
            self.hub.publish({"type": "conversation", "conversation_id": row.id, "team_id": row.team_id})

    # -- running in the background --------------------------------------------------------------
    async def run_forever(self, interval: float) -> None:
        """Start lanes whenever woken (a new reply) or every `interval` seconds (retries coming
        due); lanes run on their own, so no channel waits for another."""
        while True:
            try:
                await self.run_once(wait=0)
            except Exception:
                log.exception("outbox dispatcher pass failed")
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=interval)
            except TimeoutError:
                pass
            self.wake.clear()

    async def stop(self, grace: float = 5.0) -> None:
        """Shut down without abandoning sends: stop claiming, give the running lanes `grace`
        seconds to finish what they started, record what the platforms accepted, and only then
        cancel what is left (a send cut off mid-request is reconciled by the next holder: at-least-once)."""
        self._stopping = True
        lanes = list(self._lanes.values())
        if lanes:
            _, late = await asyncio.wait(lanes, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
        if self._recorder is not None:
            await asyncio.gather(self._recorder, return_exceptions=True)


def _conversation_key(entry: Any) -> tuple[Any, Any]:
    """Replies to one thread go out in order; different threads need not wait for each other."""
    payload = entry.payload or {}
    return payload.get("public"), payload.get("thread_external_id")
