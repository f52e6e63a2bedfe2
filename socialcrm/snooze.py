"""Snooze: out of the queue until a chosen time, then back in it (the scheduler's wake job).

SLA: a snoozed conversation waits on us only once the customer writes. Snoozing is logged as
"pending" with detail {"snoozed_until": ...}, so the SLA engine pauses every clock exactly as
for "waiting on customer"; a new customer message wakes it at once (ingest reopens any
conversation the customer writes in, and its "customer_message" resumes the clocks). The wake
job logs "open" with detail {"woke": true}, which resumes them too, and the row's deadline and
priority are recomputed from the log, so the inbox and the SLA figures agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from socialcrm import models, routing, sla, sla_policies
from socialcrm.conversations import ConversationNotFound
from socialcrm.eventlog import log_event
from socialcrm.models import utcnow

if TYPE_CHECKING:
    from socialcrm.core import Core

conversation_t = models.Conversation.__table__
MAX_AHEAD = timedelta(days=90)
MIN_AHEAD = timedelta(minutes=1)
#: The quick choices the form offers: label -> how long.
PRESETS = {"1h": ("1 hour", timedelta(hours=1)), "4h": ("4 hours", timedelta(hours=4)),
           "1d": ("1 day", timedelta(days=1)), "7d": ("1 week", timedelta(days=7))}
SNOOZABLE = ("open", "pending", "snoozed")
WAKE_BATCH = 200


class SnoozeRejected(ValueError):
    """A snooze we will not do; str(exc) says why in plain words."""


def parse_until(preset: str, custom: str, now: datetime) -> datetime:
    """The wake time from a preset ('4h') or a custom UTC time ('2026-11-26T09:00', as the form sends)."""
    if preset and preset != "custom":
        if preset not in PRESETS:
            raise SnoozeRejected("Choose one of the snooze times, or a time of your own.")
        return check_until(now + PRESETS[preset][1], now)
    try:
        until = datetime.fromisoformat(custom.strip())
    except ValueError:
        raise SnoozeRejected("Give the time to wake it up as date and time, e.g. 2026-11-26 09:00 (UTC).") from None
    return check_until(until if until.tzinfo else until.replace(tzinfo=timezone.utc), now)


def check_until(until: datetime, now: datetime) -> datetime:
    if until < now + MIN_AHEAD:
        raise SnoozeRejected("The wake-up time must be in the future.")
    if until > now + MAX_AHEAD:
        raise SnoozeRejected(f"Snooze for at most {MAX_AHEAD.days} days.")
    return until.astimezone(timezone.utc)


async def snooze(core: Core, conversation_id: int, until: datetime, by_user_id: int | None,
                 now: datetime | None = None) -> None:
    """Out of every queue until `until`; SLA clocks paused (see the module docstring)."""
    now = now or utcnow()
    check_until(until, now)
    async with core.engine.begin() as conn:
        conv = (await conn.execute(sa.select(conversation_t.c.team_id, conversation_t.c.status,
                                             conversation_t.c.public)
                                   .where(conversation_t.c.id == conversation_id))).first()
        if conv is None:
            raise ConversationNotFound(conversation_id)
        if conv.status not in SNOOZABLE:
            raise SnoozeRejected(f"A {conv.status} conversation cannot be snoozed; reopen it first.")
        await conn.execute(conversation_t.update().where(conversation_t.c.id == conversation_id).values(
            status="snoozed", snoozed_until=until, waiting_since=None, sla_due_at=None,
            priority=sla.priority(bool(conv.public), None)))
        await log_event(conn, conversation_id, "pending", at=now, user_id=by_user_id,
                        detail={"snoozed_until": until.isoformat()})
        assigned = await routing.route(conn)
    core.announce([conversation_id], conv.team_id, assigned)


async def wake_on(conn: AsyncConnection, conversation_id: int, now: datetime, by_user_id: int | None = None) -> bool:
    """Back to open if it is still snoozed (a customer message may have woken it already)."""
    woke = (await conn.execute(conversation_t.update().where(
        conversation_t.c.id == conversation_id, conversation_t.c.status == "snoozed",
    ).values(status="open", snoozed_until=None))).rowcount
    if woke:
        await log_event(conn, conversation_id, "open", at=now, user_id=by_user_id, detail={"woke": True})
        await sla_policies.refresh(conn, conversation_id, now)
    return bool(woke)


async def wake_due(core: Core, now: datetime | None = None) -> list[int]:
    """Scheduler job: wake every conversation whose time has come, route them, tell the inboxes."""
    now = now or utcnow()
    async with core.engine.begin() as conn:
        due = (await conn.execute(sa.select(conversation_t.c.id, conversation_t.c.team_id).where(
            conversation_t.c.status == "snoozed", conversation_t.c.snoozed_until <= now)
            .order_by(conversation_t.c.snoozed_until).limit(WAKE_BATCH))).all()
        woken = [(r.id, r.team_id) for r in due if await wake_on(conn, r.id, now)]
        assigned = await routing.route(conn, now) if woken else []
    for i, team in enumerate(sorted({t for _, t in woken})):
        core.announce([cid for cid, t in woken if t == team], team, assigned if i == 0 else [])
    return [cid for cid, _ in woken]
