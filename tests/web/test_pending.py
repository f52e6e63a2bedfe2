"""Waiting on the customer: out of the queue with the SLA clock paused, until they write again."""

from __future__ import annotations

import sqlalchemy as sa

from socialcrm import metrics, models
from socialcrm.metrics import SlaPolicy
from socialcrm.models import utcnow
from tests.support import ev, minutes
from tests.web.conftest import conversation_of

conv_t, event_t = models.Conversation.__table__, models.ConversationEvent.__table__


async def events(world, conv_id):
    async with world.core.engine.connect() as conn:
        return (await conn.execute(sa.select(event_t).where(event_t.c.conversation_id == conv_id)
                                   .order_by(event_t.c.at, event_t.c.id))).all()


async def test_pending_leaves_the_queue_pauses_the_clock_and_the_customer_reopens_it(signed_in, world) -> None:
    start = utcnow() - minutes(30)
    await world.ingest(world.care_channel, [ev("message", "m-1", "cust-1", text="Kan dere sjekke?", at=start)])
    conv = await conversation_of(world.core, world.care_channel, "m-1")
    b = await signed_in("agent")
    _, html = await b.get(f"/conversations/{conv}")
    assert "Waiting on customer" in html
    resp, _ = await b.post(f"/conversations/{conv}/pending")
    assert resp.status == 303
    _, inbox = await b.get("/?tab=all")
    assert "Kan dere sjekke?" not in inbox                       # not in the open queue while pending
    async with world.core.engine.connect() as conn:
        row = (await conn.execute(sa.select(conv_t).where(conv_t.c.id == conv))).one()
    assert (row.status, row.sla_due_at) == ("pending", None)

    await world.ingest(world.care_channel, [ev("message", "m-2", "cust-1", text="Her er ordrenummeret", at=utcnow())])
    async with world.core.engine.connect() as conn:
        row = (await conn.execute(sa.select(conv_t).where(conv_t.c.id == conv))).one()
    assert row.status == "open" and row.sla_due_at is not None
    log = await events(world, conv)
    assert [e.kind for e in log] == ["created", "customer_message", "pending", "customer_message"]
    # The event log is what the SLA engine reads: the pause is part of the first-response clock.
    tl = metrics.timeline(metrics.events_from_rows(log), SlaPolicy(60, 60, 1440), utcnow())
    assert tl.first_response is not None and tl.first_response.paused is False


async def test_the_agent_can_end_the_pause(signed_in, world) -> None:
    await world.ingest(world.care_channel, [ev("message", "m-1", "cust-1", at=utcnow())])
    conv = await conversation_of(world.core, world.care_channel, "m-1")
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    await b.post(f"/conversations/{conv}/pending")
    _, html = await b.get(f"/conversations/{conv}")
    assert "Waiting on customer" not in html and ">Reopen<" in html
    await b.post(f"/conversations/{conv}/reopen")
    assert [e.kind for e in await events(world, conv)][-2:] == ["pending", "open"]
