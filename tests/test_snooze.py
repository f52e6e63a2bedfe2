"""Snooze: out of the queue and the router until a time, SLA paused; woken by the job or the customer."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
import sqlalchemy as sa

from socialcrm import ingest, inbox, models, snooze
from socialcrm.users import Viewer
from tests.support import T0, add_agent, add_team_and_channel, ev, minutes, running_core

conv_t, event_t = models.Conversation.__table__, models.ConversationEvent.__table__
LEAD = Viewer(999, "lead", "Lead", "lead", False, 0, frozenset())


@pytest.mark.parametrize(("preset", "custom", "expected"), [
    ("4h", "", T0 + timedelta(hours=4)),
    ("7d", "", T0 + timedelta(days=7)),
    ("custom", "2026-11-26T08:30", T0.replace(day=26, hour=8, minute=30)),
    ("", "2026-11-26T08:30+01:00", T0.replace(day=26, hour=7, minute=30)),
])
def test_the_wake_time_comes_from_a_preset_or_a_utc_time(preset, custom, expected):
    until = snooze.parse_until(preset, custom, T0)
    assert until == expected and until.tzinfo == timezone.utc


@pytest.mark.parametrize(("preset", "custom", "why"), [
    ("", "2026-11-25T08:59", "must be in the future"),
    ("", "2026-11-25T09:00:30", "must be in the future"),
    ("", "2027-02-24T09:01", "at most 90 days"),
    ("", "tomorrow", "date and time"),
    ("", "", "date and time"),
    ("3y", "", "Choose one of the snooze times"),
])
def test_bad_wake_times_are_refused_in_words(preset, custom, why):
    with pytest.raises(snooze.SnoozeRejected, match=why):
        snooze.parse_until(preset, custom, T0)


async def _waiting_conversation(core) -> tuple[int, object]:
    ch = await add_team_and_channel(core)
    info = (await core.channels.get(ch)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("message", "m-1", "dm-1", text="Hei?", at=T0)], now=T0)
        return await conn.scalar(sa.select(conv_t.c.id)), info


async def _row(core, conv):
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(conv_t).where(conv_t.c.id == conv))).one()


async def _kinds(core, conv):
    async with core.engine.connect() as conn:
        return [(r.kind, r.detail) for r in await conn.execute(
            sa.select(event_t.c.kind, event_t.c.detail).where(event_t.c.conversation_id == conv).order_by(event_t.c.id))]


async def test_a_snoozed_conversation_leaves_queue_and_router_then_wakes_in_place(database_url):
    async with running_core(database_url) as core:
        conv, _ = await _waiting_conversation(core)
        due_before = (await _row(core, conv)).sla_due_at
        until = T0 + minutes(70)
        await snooze.snooze(core, conv, until, None, now=T0 + minutes(10))
        row = await _row(core, conv)
        assert (row.status, row.snoozed_until, row.sla_due_at, row.waiting_since) == ("snoozed", until, None, None)
        assert await inbox.queue(core.engine, LEAD, "all") == []
        kari = await add_agent(core, "kari")                       # online now: the router must pass it by
        assert (await _row(core, conv)).assignee_id is None

        assert await snooze.wake_due(core, now=T0 + minutes(69)) == []
        async with core.hub.subscribe() as queue:
            assert await snooze.wake_due(core, now=T0 + minutes(70)) == [conv]
            published = [queue.get_nowait() for _ in range(queue.qsize())]
        row = await _row(core, conv)
        assert (row.status, row.snoozed_until, row.assignee_id) == ("open", None, kari)
        # The hour snoozed did not count: the deadline moved by exactly the pause.
        assert row.sla_due_at == due_before + minutes(60)
        assert [r.id for r in await inbox.queue(core.engine, LEAD, "all")] == [conv]
        assert {"type": "inbox", "team_id": row.team_id} in published
        kinds = await _kinds(core, conv)
        assert ("pending", {"snoozed_until": until.isoformat()}) in kinds
        assert ("open", {"woke": True}) in kinds
        assert kinds.index(("open", {"woke": True})) > kinds.index(("pending", {"snoozed_until": until.isoformat()}))
        assert await snooze.wake_due(core, now=T0 + minutes(200)) == []   # nothing twice


async def test_the_customer_writing_wakes_it_at_once_and_the_job_then_leaves_it(database_url):
    async with running_core(database_url) as core:
        conv, info = await _waiting_conversation(core)
        due_before = (await _row(core, conv)).sla_due_at
        await snooze.snooze(core, conv, T0 + timedelta(days=2), None, now=T0 + minutes(1))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("message", "m-2", "dm-1", text="Hallo?", at=T0 + minutes(30))],
                               now=T0 + minutes(30))
        row = await _row(core, conv)
        assert (row.status, row.snoozed_until) == ("open", None)
        # The paused clock goes on (29 minutes snoozed do not count), as the SLA figures say.
        assert row.sla_due_at == due_before + minutes(29)
        assert await snooze.wake_due(core, now=T0 + timedelta(days=3)) == []
        assert [k for k, d in await _kinds(core, conv)].count("open") == 0   # the customer's message resumed it


async def test_only_open_or_waiting_conversations_can_be_snoozed(database_url):
    async with running_core(database_url) as core:
        conv, _ = await _waiting_conversation(core)
        async with core.engine.begin() as conn:
            await conn.execute(conv_t.update().values(status="resolved"))
        with pytest.raises(snooze.SnoozeRejected, match="resolved conversation cannot be snoozed"):
            await snooze.snooze(core, conv, T0 + minutes(70), None, now=T0)
        with pytest.raises(snooze.SnoozeRejected, match="in the future"):
            await snooze.snooze(core, conv, T0, None, now=T0)
        assert (await _row(core, conv)).status == "resolved"
