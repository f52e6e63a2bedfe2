"""Deliver queued replies through their channel's connector; never lose one, never fake "sent".

A message shows "sent" only after the platform accepted it and returned its id. Entries
are claimed with a lease (and FOR UPDATE SKIP LOCKED on PostgreSQL), so several
dispatchers never take the same entry; a dispatcher that dies after the platform accepted
a reply but before marking it leaves an expired lease, and the entry is sent again with the
same idempotency key: delivery is at-least-once, exactly-once where the platform honours
the key (Mastodon's Idempotency-Key) or reports our own reply back as an echo.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from socialcrm import models
from socialcrm.channels import ChannelStore, set_status
from socialcrm.connector import OutboundReply, Sent
from socialcrm.errors import AuthFailed, PermanentError, RateLimited, SendError
from socialcrm.ingest import apply_pending_for
from socialcrm.live import Hub
from socialcrm.models import utcnow

log = logging.getLogger(__name__)
outbox_t = models.OutboxEntry.__table__
message_t = models.Message.__table__
channel_t = models.Channel.__table__
conversation_t = models.Conversation.__table__

LEASE = timedelta(seconds=120)
BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0
MAX_ATTEMPTS = 12
CLAIM_BATCH = 50


def backoff_seconds(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) of the step, capped."""
    step = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt - 1))
    return step * (0.5 + rng())


class Dispatcher:
    def __init__(self, engine: AsyncEngine, channels: ChannelStore, hub: Hub,
                 clock: Callable[[], datetime] = utcnow, rng: Callable[[], float] = random.random) -> None:
        self.engine, self.channels, self.hub, self.clock, self.rng = engine, channels, hub, clock, rng
        self.wake = asyncio.Event()

    async def run_once(self) -> int:
        """Claim and deliver what is due; returns how many entries were attempted."""
        entries = await self.claim()
        by_channel: dict[int, list[Any]] = {}
        for entry in entries:
            by_channel.setdefault(entry.channel_id, []).append(entry)
        # Channels in parallel (one channel's rate limit never holds up another), in order within one.
        await asyncio.gather(*(self._deliver_in_order(group) for group in by_channel.values()))
        return len(entries)

    async def _deliver_in_order(self, entries: list[Any]) -> None:
        for i, entry in enumerate(entries):
            if not await self.deliver(entry):
                await self._release(entries[i + 1:])  # rate limited or unauthorised: the rest waits too
                return

    async def _release(self, entries: list[Any]) -> None:
        """Give back claimed entries that were not attempted, without counting an attempt."""
        if not entries:
            return
        async with self.engine.begin() as conn:
            await conn.execute(outbox_t.update().where(outbox_t.c.id.in_([e.id for e in entries])).values(
                status="pending", lease_until=None, attempts=outbox_t.c.attempts - 1))

    async def claim(self) -> list[Any]:
        now = self.clock()
        due = sa.or_(sa.and_(outbox_t.c.status == "pending", outbox_t.c.next_attempt_at <= now),
                     sa.and_(outbox_t.c.status == "sending", outbox_t.c.lease_until < now))
        async with self.engine.begin() as conn:
            ids = (await conn.execute(
                sa.select(outbox_t.c.id).join(channel_t, channel_t.c.id == outbox_t.c.channel_id)
                .where(due, channel_t.c.status.in_(("active", "failing")))
                .order_by(outbox_t.c.next_attempt_at, outbox_t.c.id).limit(CLAIM_BATCH)
                .with_for_update(skip_locked=True, of=outbox_t))).scalars().all()
            if not ids:
                return []
            await conn.execute(outbox_t.update().where(outbox_t.c.id.in_(ids)).values(
                status="sending", lease_until=now + LEASE, attempts=outbox_t.c.attempts + 1))
            return list((await conn.execute(sa.select(outbox_t).where(outbox_t.c.id.in_(ids))
                                             .order_by(outbox_t.c.id))).all())

    async def deliver(self, entry: Any) -> bool:
        """Send one entry; True when the channel may take the next one right away."""
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
        async with self.engine.begin() as conn:
            # The platform may have echoed our reply before send() returned: keep one row, ours.
            await conn.execute(message_t.delete().where(
                message_t.c.channel_id == entry.channel_id, message_t.c.external_id == sent.external_id,
                message_t.c.id != entry.message_id, message_t.c.direction == "out"))
            await conn.execute(message_t.update().where(message_t.c.id == entry.message_id).values(
                external_id=sent.external_id, status="sent", error=""))
            await conn.execute(outbox_t.update().where(outbox_t.c.id == entry.id).values(
                status="sent", sent_at=sent.sent_at, lease_until=None, last_error=""))
            await apply_pending_for(conn, entry.channel_id, sent.external_id)
        await self._publish(entry)

    async def _rate_limited(self, entry: Any, exc: RateLimited) -> None:
        until = self.clock() + timedelta(seconds=exc.retry_after)
        async with self.engine.begin() as conn:
            await self._reschedule(conn, entry, until, f"rate limited by the platform; retrying after {until:%H:%M:%S} UTC")
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
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(conversation_t.c.id, conversation_t.c.team_id)
                                      .join(message_t, message_t.c.conversation_id == conversation_t.c.id)
                                      .where(message_t.c.id == entry.message_id))).first()
        if row is not None:
            self.hub.publish({"type": "conversation", "conversation_id": row.id, "team_id": row.team_id})

    async def run_forever(self, interval: float) -> None:
        """Deliver whenever woken (a new reply) or every `interval` seconds (retries coming due)."""
        while True:
            try:
                while await self.run_once():
                    pass
            except Exception:
                log.exception("outbox dispatcher pass failed")
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=interval)
            except TimeoutError:
                pass
            self.wake.clear()
