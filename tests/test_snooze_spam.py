"""Spam (hidden from queues and router, kept, reversible) and resolving with a reason."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from socialcrm import conversations, filters, inbox, ingest, metrics, models, spam
from socialcrm.users import Viewer
from tests.support import T0, add_agent, add_team_and_channel, ev, minutes, running_core

conv_t, event_t, msg_t = models.Conversation.__table__, models.ConversationEvent.__table__, models.Message.__table__
LEAD = Viewer(999, "lead", "Lead", "lead", False, 0, frozenset())


async def _conversation(core) -> int:
    ch = await add_team_and_channel(core)
    info = (await core.channels.get(ch)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("message", "m-1", "dm-1", text="Buy followers!!!", at=T0)], now=T0)
        return await conn.scalar(sa.select(conv_t.c.id))


async def _row(core, conv):
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(conv_t).where(conv_t.c.id == conv))).one()


async def test_spam_is_hidden_from_queue_and_router_kept_and_reversible(database_url):
    async with running_core(database_url) as core:
        conv = await _conversation(core)
        await spam.mark_spam(core, conv, None)
        assert (await _row(core, conv)).status == "spam"
        assert await inbox.queue(core.engine, LEAD, "all") == []
        kari = await add_agent(core, "kari")
        assert (await _row(core, conv)).assignee_id is None
        spam_view = await inbox.filtered_view(core.engine, LEAD, filters.parse({"status": "spam"}))
        assert [r.id for r in spam_view.rows] == [conv]
        async with core.engine.connect() as conn:
            assert await conn.scalar(sa.select(msg_t.c.text)) == "Buy followers!!!"      # kept
        with pytest.raises(spam.SpamRejected, match="already"):
            await spam.mark_spam(core, conv, None)

        await spam.not_spam(core, conv, kari)
        row = await _row(core, conv)
        assert (row.status, row.assignee_id) == ("open", kari)
        assert row.sla_due_at is not None                    # the customer still waits for an answer
        with pytest.raises(spam.SpamRejected, match="not marked"):
            await spam.not_spam(core, conv, kari)
        async with core.engine.connect() as conn:
            kinds = [(k, u) for k, u in await conn.execute(sa.select(event_t.c.kind, event_t.c.user_id)
                                                           .order_by(event_t.c.id))]
        assert ("spam", None) in kinds and ("not_spam", kari) in kinds


async def test_a_spammer_writing_again_stays_out_of_the_queue(database_url):
    async with running_core(database_url) as core:
        conv = await _conversation(core)
        await spam.mark_spam(core, conv, None)
        info = (await core.channels.get((await _row(core, conv)).channel_id)).info
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("message", "m-2", "dm-1", text="Still selling", at=T0 + minutes(9))],
                               now=T0 + minutes(9))
        row = await _row(core, conv)
        assert (row.status, row.sla_due_at, row.last_message_preview) == ("spam", None, "Still selling")
        assert await inbox.queue(core.engine, LEAD, "all") == []
        async with core.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(msg_t)) == 2      # kept


def test_the_sla_engine_ignores_tags_and_spam_taken_back():
    """'tagged' and 'untagged' must not move a clock; 'spam' then 'not_spam' leaves the clocks as they were."""
    from socialcrm.metrics import Event, SlaPolicy

    policy = SlaPolicy(60, 60, 600)
    base = [Event("created", T0), Event("customer_message", T0)]
    extra = [Event(k, T0 + minutes(5), detail={"tag": "x"}) for k in ("tagged", "untagged", "spam", "not_spam")]
    now = T0 + minutes(30)
    assert metrics.timeline(base + extra, policy, now).clocks == metrics.timeline(base, policy, now).clocks


@pytest.mark.parametrize(("code", "text", "stored"), [
    ("", "", ""), ("answered", "", "Answered"), ("", "just text", "just text"),
    ("self_help", " sent  the FAQ link ", "Customer helped themselves: sent the FAQ link"),
])
def test_resolve_reasons_read_as_label_and_words(code, text, stored):
    assert conversations.resolve_reason(code, text) == stored


def test_an_unknown_resolve_reason_is_refused():
    with pytest.raises(ValueError, match="not one of the resolve reasons"):
        conversations.resolve_reason("because", "")


async def test_the_reason_is_stored_logged_and_cleared_by_a_reopen(database_url):
    async with running_core(database_url) as core:
        conv = await _conversation(core)
        reason = conversations.resolve_reason("duplicate", "see #12")
        await conversations.resolve(core, conv, None, reason)
        assert ((await _row(core, conv)).status, (await _row(core, conv)).resolve_reason) == ("resolved",
                                                                                            "Duplicate: see #12")
        async with core.engine.connect() as conn:
            detail = await conn.scalar(sa.select(event_t.c.detail).where(event_t.c.kind == "resolved"))
        assert detail == {"reason": "Duplicate: see #12"}
        await conversations.reopen(core, conv, None)
        assert ((await _row(core, conv)).status, (await _row(core, conv)).resolve_reason) == ("open", "")
