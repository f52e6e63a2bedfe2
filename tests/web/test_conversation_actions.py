"""Moderation, retry and the private reply from the conversation page."""

from __future__ import annotations

import httpx
import respx
import sqlalchemy as sa

from socialcrm import models
from tests.support import PLATFORM, ev
from tests.web.conftest import conversation_of

msg_t, out_t, event_t = models.Message.__table__, models.OutboxEntry.__table__, models.ConversationEvent.__table__


async def _public(world) -> int:
    await world.ingest(world.care_channel, [ev("comment", "c-1", "post-1", public=True, text="Dette er spam")])
    return await conversation_of(world.core, world.care_channel, "c-1")


async def test_hiding_a_public_comment_calls_the_platform_and_logs_who(signed_in, world) -> None:
    conv = await _public(world)
    b = await signed_in("agent")
    _, html = await b.get(f"/conversations/{conv}")
    assert 'action="/conversations/%d/messages/1/moderate"' % conv in html
    with respx.mock(base_url=PLATFORM) as platform:
        hide = platform.post("/api/items/c-1/hide").mock(return_value=httpx.Response(200, json={}))
        resp, _ = await b.post(f"/conversations/{conv}/messages/1/moderate", {"action": "hide", "reason": "spam"})
    assert resp.status == 303 and hide.call_count == 1
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(msg_t.c.moderation)) == "hidden"
        logged = (await conn.execute(sa.select(event_t).where(event_t.c.kind == "moderated"))).one()
    assert logged.user_id == world.agent_id and logged.detail["reason"] == "spam"


async def test_an_action_the_channel_lacks_is_refused_in_words(signed_in, world) -> None:
    conv = await _public(world)
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    resp, html = await b.post(f"/conversations/{conv}/messages/1/moderate", {"action": "unhide"})
    assert resp.status == 422 and "This channel cannot unhide items." in html


async def test_a_message_of_another_conversation_is_404(signed_in, world) -> None:
    conv = await _public(world)
    await world.ingest(world.care_channel, [ev("message", "d-1", "cust-9", author="cust-9")])
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    resp, _ = await b.post(f"/conversations/{conv}/messages/2/retry")
    assert resp.status == 404


async def test_a_failed_reply_can_be_sent_again(signed_in, world) -> None:
    await world.ingest(world.care_channel, [ev("message", "d-1", "cust-1", text="hei",
                                               at=models.utcnow())])
    conv = await conversation_of(world.core, world.care_channel, "d-1")
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    await b.post(f"/conversations/{conv}/reply", {"text": "svar"})
    async with world.core.engine.begin() as conn:
        await conn.execute(msg_t.update().where(msg_t.c.direction == "out").values(status="failed", error="nope"))
        await conn.execute(out_t.update().values(status="failed"))
    _, html = await b.get(f"/conversations/{conv}")
    assert "Send again" in html
    resp, _ = await b.post(f"/conversations/{conv}/messages/2/retry")
    assert resp.status == 303
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(out_t.c.status)) == "pending"
        assert await conn.scalar(sa.select(msg_t.c.status).where(msg_t.c.id == 2)) == "queued"


async def test_private_reply_mode_is_refused_where_the_platform_has_none(signed_in, world) -> None:
    conv = await _public(world)
    b = await signed_in("agent")
    _, html = await b.get(f"/conversations/{conv}")
    assert "Answer this comment privately" not in html       # the simulator has no private replies to comments
    resp, html = await b.post(f"/conversations/{conv}/reply", {"text": "hei", "mode": "private_reply"})
    assert resp.status == 422 and "cannot answer this conversation privately" in html
    resp, _ = await b.post(f"/conversations/{conv}/reply", {"text": "hei", "mode": "shout"})
    assert resp.status == 400


async def test_outside_the_window_the_composer_offers_only_approved_templates(signed_in, world) -> None:
    from datetime import timedelta

    from tests.test_replies import WhatsAppLike

    world.core.registry.add(WhatsAppLike)
    from tests.support import add_team_and_channel

    channel = await add_team_and_channel(world.core, "Care", "wa-number", connector="walike")
    await world.ingest(channel, [ev("message", "w-1", "cust-5", author="cust-5",
                                    at=models.utcnow() - timedelta(hours=30))])
    conv = await conversation_of(world.core, channel, "w-1")
    b = await signed_in("agent")
    _, html = await b.get(f"/conversations/{conv}")
    assert "only an approved template message can be sent now" in html
    assert '<option value="order_update|nb">' in html
    resp, _ = await b.post(f"/conversations/{conv}/reply", {"mode": "template", "template": "order_update|nb",
                                                            "parameters": "Kari\n"})
    assert resp.status == 303
    async with world.core.engine.connect() as conn:
        payload = await conn.scalar(sa.select(out_t.c.payload))
    assert payload["template"] == {"name": "order_update", "language": "nb", "parameters": ["Kari"]}
