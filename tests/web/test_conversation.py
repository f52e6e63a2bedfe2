"""The conversation page: access, escaping, the thread, the composer, the actions."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from socialcrm import models
from socialcrm.models import utcnow
from tests.support import ev
from tests.web.conftest import conversation_of

XSS_TEXT = 'Hi <script>alert(1)</script> and <img src=x onerror=alert(1)>'
XSS_NAME = '<script>alert("name")</script><img src=x onerror=alert(2)>'


async def _one(world, public: bool = False, text: str = "hello there", **kw) -> int:
    kind = "comment" if public else "message"
    await world.ingest(world.care_channel, [ev(kind, "m-1", "post-1" if public else "cust-1", public=public,
                                              text=text, **kw)])
    return await conversation_of(world.core, world.care_channel, "m-1")


async def test_agent_of_another_team_gets_404_everywhere(signed_in, world) -> None:
    conv = await _one(world)
    outsider = await signed_in("outsider")
    for path in (f"/conversations/{conv}", f"/conversations/{conv}/thread"):
        resp, html = await outsider.get(path)
        assert resp.status == 404, path
        assert "hello there" not in html
    for action, form in (("reply", {"text": "sneaky"}), ("assign", {"assignee": "me"}), ("resolve", {})):
        resp, _ = await outsider.post(f"/conversations/{conv}/{action}", form)
        assert resp.status == 404, action
    resp, html = await (await signed_in("lead")).get(f"/conversations/{conv}")
    assert resp.status == 200 and "hello there" in html


async def test_missing_conversation_is_404(signed_in, world) -> None:
    resp, _ = await (await signed_in("agent")).get("/conversations/999999")
    assert resp.status == 404


async def test_customer_html_is_shown_escaped(signed_in, world) -> None:
    conv = await _one(world, public=True, text=XSS_TEXT, name=XSS_NAME)
    b = await signed_in("agent")
    for path in ("/", f"/conversations/{conv}", f"/conversations/{conv}/thread"):
        _, html = await b.get(path)
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        assert "&lt;img src=x onerror=alert(" in html, path


async def test_public_and_private_are_marked(signed_in, world) -> None:
    public = await _one(world, public=True)
    await world.ingest(world.care_channel, [ev("message", "dm-1", "cust-9", author="cust-9", text="a dm")])
    private = await conversation_of(world.core, world.care_channel, "dm-1")
    b = await signed_in("agent")
    _, html = await b.get(f"/conversations/{public}")
    assert "Public — everyone can see this" in html
    assert "Public reply — everyone will see it" in html
    _, html = await b.get(f"/conversations/{private}")
    assert "Public — everyone can see this" not in html
    assert 'badge-private">Private</span>' in html


async def test_composer_shows_limit_and_window(signed_in, world) -> None:
    conv = await _one(world)
    _, html = await (await signed_in("agent")).get(f"/conversations/{conv}")
    assert 'data-max-length="2000"' in html and "At most 2000 characters." in html
    assert "Reply window closes" in html


async def test_composer_disabled_with_reason_when_window_closed(signed_in, world) -> None:
    conv = await _one(world, at=utcnow() - timedelta(hours=30))
    resp, html = await (await signed_in("agent")).get(f"/conversations/{conv}")
    assert resp.status == 200
    assert "reply window closed" in html
    assert "disabled>" in html.split('id="reply-text"')[1].split("</textarea>")[0]


async def test_reply_is_queued_and_shown(signed_in, world) -> None:
    conv = await _one(world)
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    resp, _ = await b.post(f"/conversations/{conv}/reply", {"text": "We are on it <b>now</b>"})
    assert resp.status == 303 and resp.headers["Location"] == f"/conversations/{conv}"
    _, html = await b.get(f"/conversations/{conv}")
    assert "We are on it &lt;b&gt;now&lt;/b&gt;" in html
    assert 'delivery-queued">queued' in html
    m = models.OutboxEntry.__table__
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(m)) == 1


async def test_rejected_reply_shows_the_reason_and_keeps_the_draft(signed_in, world) -> None:
    conv = await _one(world, public=True)
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    too_long = "x" * 501
    resp, html = await b.post(f"/conversations/{conv}/reply", {"text": too_long})
    assert resp.status == 422
    assert "Too long for a Simulated platform public reply: 501 of at most 500 characters." in html
    assert too_long in html, "the draft is kept"
    resp, html = await b.post(f"/conversations/{conv}/reply", {"text": "   "})
    assert resp.status == 422 and "The reply is empty." in html


async def test_failed_delivery_shows_the_platform_reason(signed_in, world) -> None:
    conv = await _one(world)
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    await b.post(f"/conversations/{conv}/reply", {"text": "hello"})
    m = models.Message.__table__
    async with world.core.engine.begin() as conn:
        await conn.execute(m.update().where(m.c.direction == "out")
                           .values(status="failed", error="The user has blocked <you>"))
    _, html = await b.get(f"/conversations/{conv}/thread")
    assert 'delivery-failed">failed' in html
    assert "The platform said: The user has blocked &lt;you&gt;" in html


async def test_edited_deleted_hidden_markers(signed_in, world) -> None:
    conv = await _one(world, public=True)
    await world.ingest(world.care_channel, [
        ev("edit", "m-1-edit", "post-1", public=True, target="m-1", text="edited text"),
        ev("delete", "m-1-del", "post-1", public=True, target="m-1"),
        ev("edit", "m-1-hide", "post-1", public=True, target="m-1", detail={"moderation": "hidden"}),
    ])
    _, html = await (await signed_in("agent")).get(f"/conversations/{conv}")
    assert "edited text" in html and "marker-edited" in html
    assert "Deleted by the author on the platform." in html
    assert "Hidden on the platform" in html


async def test_assignment_reason_is_shown_to_assignee_and_others(signed_in, world) -> None:
    conv = await _one(world)
    c = models.Conversation.__table__
    async with world.core.engine.begin() as conn:
        await conn.execute(c.update().where(c.c.id == conv).values(
            assignee_id=world.agent_id, assignment_reason="public post, 12 min to SLA, you had 2 of 5 open"))
    _, html = await (await signed_in("agent")).get(f"/conversations/{conv}")
    assert "Assigned to you: public post, 12 min to SLA, you had 2 of 5 open" in html
    _, html = await (await signed_in("lead")).get(f"/conversations/{conv}")
    assert "Assigned to Kari Agent: public post, 12 min to SLA, you had 2 of 5 open" in html


async def test_assign_unassign_resolve_reopen(signed_in, world) -> None:
    conv = await _one(world)
    b = await signed_in("agent")
    c = models.Conversation.__table__

    async def state() -> tuple:
        async with world.core.engine.connect() as conn:
            return (await conn.execute(sa.select(c.c.assignee_id, c.c.status).where(c.c.id == conv))).one()

    await b.get(f"/conversations/{conv}")
    assert (await b.post(f"/conversations/{conv}/assign", {"assignee": "me"}))[0].status == 303
    assert await state() == (world.agent_id, "open")
    assert (await b.post(f"/conversations/{conv}/assign", {"assignee": "none"}))[0].status == 303
    assert await state() == (None, "open")
    assert (await b.post(f"/conversations/{conv}/assign", {"assignee": str(world.lead_id)}))[0].status == 400
    assert (await b.post(f"/conversations/{conv}/resolve"))[0].status == 303
    assert (await state())[1] == "resolved"
    _, html = await b.get(f"/conversations/{conv}")
    assert ">Reopen</button>" in html
    assert (await b.post(f"/conversations/{conv}/reopen"))[0].status == 303
    assert (await state())[1] == "open"


async def test_contact_panel_lists_other_conversations(signed_in, world) -> None:
    await world.ingest(world.care_channel, [
        ev("message", "dm-1", "cust-1", author="cust-1", text="my private question"),
        ev("comment", "c-1", "post-7", author="cust-1", public=True, text="my public complaint"),
    ])
    dm = await conversation_of(world.core, world.care_channel, "dm-1")
    public = await conversation_of(world.core, world.care_channel, "c-1")
    _, html = await (await signed_in("agent")).get(f"/conversations/{dm}")
    panel = html.split('id="contact-title"')[1]
    assert f'href="/conversations/{public}"' in panel and "my public complaint" in panel


async def test_connector_specific_message_template_wins_by_file_name(signed_in, world, server) -> None:
    """`conversation/message-<connector>.html` replaces the generic one, without `if` in Jinja."""
    import aiohttp_jinja2
    import jinja2

    env = aiohttp_jinja2.get_env(server.app)
    env.loader = jinja2.ChoiceLoader([
        jinja2.DictLoader({"conversation/message-simulator.html": '<p class="sim-msg">{{ m.text }}</p>'}),
        env.loader,
    ])
    env.cache.clear()
    conv = await _one(world, text="via the <simulator> template")
    _, html = await (await signed_in("agent")).get(f"/conversations/{conv}")
    assert '<p class="sim-msg">via the &lt;simulator&gt; template</p>' in html
    assert 'class="msg msg-in' not in html


async def test_channel_whose_connector_is_gone_disables_the_reply_box(signed_in, world) -> None:
    conv = await _one(world)
    ch = models.Channel.__table__
    async with world.core.engine.begin() as conn:
        await conn.execute(ch.update().where(ch.c.id == world.care_channel).values(connector="uninstalled"))
    world.core.channels.invalidate()
    b = await signed_in("agent")
    resp, html = await b.get(f"/conversations/{conv}")
    assert resp.status == 200 and "hello there" in html
    assert "The channel of this conversation has been removed." in html
    resp, html = await b.post(f"/conversations/{conv}/reply", {"text": "anyone?"})
    assert resp.status == 422 and "The channel of this conversation has been removed." in html
