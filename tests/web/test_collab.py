"""Notes, tags, snooze, spam, resolve reasons and notifications through the real app."""

from __future__ import annotations

import re

import sqlalchemy as sa

from socialcrm import conversations, models
from socialcrm.users import Viewer, create_user
from socialcrm.web.live import sse_name, visible
from tests.support import ev
from tests.web.conftest import PASSWORD, conversation_of
from tests.web.test_live import _next_event, _wait_for

msg_t, note_t, conv_t = models.Message.__table__, models.Notification.__table__, models.Conversation.__table__
event_t, out_t, tag_t = models.ConversationEvent.__table__, models.OutboxEntry.__table__, models.ConversationTag.__table__
XSS = "<script>alert(1)</script>"


async def _conversation(world, external_id: str = "m-1") -> int:
    await world.ingest(world.care_channel, [ev("message", external_id, f"dm-{external_id}", text="Hei")])
    return await conversation_of(world.core, world.care_channel, external_id)


async def _colleague(world) -> int:
    return (await create_user(world.core.engine, "agentb", PASSWORD, "agent", "Bo Agent", ["Care"])).id


async def _count(world, table, *where) -> int:
    async with world.core.engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where))


async def test_a_note_is_shown_as_internal_with_mentions_marked_and_escaped(signed_in, world) -> None:
    conv, bo = await _conversation(world), await _colleague(world)
    a = await signed_in("agent")
    _, page = await a.get(f"/conversations/{conv}")
    assert 'id="note-text"' in page and 'id="resolve-button"' in page
    resp, _ = await a.post(f"/conversations/{conv}/notes", {"text": f"@agentb can you check? {XSS}"})
    assert resp.status == 303 and resp.headers["Location"] == f"/conversations/{conv}"
    _, page = await a.get(f"/conversations/{conv}")
    note = re.search(r'<article class="msg msg-note".*?</article>', page, re.S).group(0)
    assert "Internal note — not sent" in note and "Kari Agent" in note
    assert '<mark class="mention">@agentb</mark> can you check? &lt;script&gt;alert(1)&lt;/script&gt;' in note
    assert XSS not in page
    assert await _count(world, out_t) == 0
    assert await _count(world, note_t, note_t.c.user_id == bo) == 1


async def test_a_note_needs_csrf_visibility_and_text(signed_in, world) -> None:
    conv = await _conversation(world)
    a, outsider = await signed_in("agent"), await signed_in("outsider")
    resp, _ = await a.post(f"/conversations/{conv}/notes", {"text": "hi"}, csrf=False)
    assert resp.status == 403
    resp, _ = await outsider.post(f"/conversations/{conv}/notes", {"text": "hi"})
    assert resp.status == 404
    resp, html = await a.post(f"/conversations/{conv}/notes", {"text": "   "})
    assert resp.status == 422 and "Write the note first." in html
    assert await _count(world, msg_t, msg_t.c.direction == "note") == 0


async def test_who_was_not_notified_is_said_once(signed_in, world) -> None:
    conv = await _conversation(world)
    a = await signed_in("agent")
    await a.post(f"/conversations/{conv}/notes", {"text": "@outsider @ghost look"})
    _, panel = await a.get(f"/conversations/{conv}/organise")
    assert "Not notified: @outsider, @ghost" in panel
    _, panel = await a.get(f"/conversations/{conv}/organise")
    assert "Not notified" not in panel


async def test_tags_are_added_removed_and_refused_in_words(signed_in, world) -> None:
    conv = await _conversation(world)
    a = await signed_in("agent")
    await a.get(f"/conversations/{conv}")
    for tag in ("Billing", "billing", "VIP"):
        resp, _ = await a.post(f"/conversations/{conv}/tags", {"tag": tag})
        assert resp.status == 303
    _, panel = await a.get(f"/conversations/{conv}/organise")
    assert re.findall(r'<li class="tag">(\S+)', panel) == ["billing", "vip"]
    resp, _ = await a.post(f"/conversations/{conv}/tags/remove", {"tag": "vip"})
    assert resp.status == 303
    resp, html = await a.post(f"/conversations/{conv}/tags", {"tag": "<b>"})
    assert resp.status == 422 and "A tag may use letters" in html
    async with world.core.engine.connect() as conn:
        assert list((await conn.execute(sa.select(tag_t.c.tag))).scalars()) == ["billing"]


async def test_snooze_spam_and_resolve_with_a_reason_from_the_page(signed_in, world) -> None:
    conv = await _conversation(world)
    a = await signed_in("agent")
    await a.get(f"/conversations/{conv}")
    resp, html = await a.post(f"/conversations/{conv}/snooze", {"preset": "custom", "until": "2001-01-01T10:00"})
    assert resp.status == 422 and "must be in the future" in html
    resp, _ = await a.post(f"/conversations/{conv}/snooze", {"preset": "4h"})
    assert resp.status == 303
    _, page = await a.get(f"/conversations/{conv}")
    assert "Snoozed until" in page and 'class="status status-snoozed"' in page
    await a.post(f"/conversations/{conv}/spam")
    _, page = await a.get(f"/conversations/{conv}")
    assert "Marked as spam" in page and 'id="resolve-button"' not in page
    await a.post(f"/conversations/{conv}/not-spam")
    resp, html = await a.post(f"/conversations/{conv}/resolution", {"reason": "nonsense"})
    assert resp.status == 400 and "not one of the resolve reasons" in html
    resp, _ = await a.post(f"/conversations/{conv}/resolution", {"reason": "self_help", "reason_text": "FAQ <3"})
    assert resp.status == 303
    _, page = await a.get(f"/conversations/{conv}")
    assert "Resolved: Customer helped themselves: FAQ &lt;3" in page
    async with world.core.engine.connect() as conn:
        kinds = list((await conn.execute(sa.select(event_t.c.kind).where(event_t.c.user_id == world.agent_id)
                                         .order_by(event_t.c.id))).scalars())
    assert kinds == ["pending", "spam", "not_spam", "resolved"]


def test_the_resolve_form_offers_exactly_the_known_reasons() -> None:
    from pathlib import Path

    html = (Path(__file__).resolve().parents[2] / "templates/conversation/_thread.html").read_text()
    form = html[html.index('class="resolve-form"'):html.index('id="resolve-button"')]
    assert re.findall(r'<option value="(\w+)">', form) == list(conversations.RESOLVE_REASONS)


async def test_the_bell_counts_lists_and_follows_notifications(signed_in, world) -> None:
    conv = await _conversation(world)
    await _colleague(world)
    a = await signed_in("agent")
    await a.get(f"/conversations/{conv}")
    await a.post(f"/conversations/{conv}/notes", {"text": "@agentb <b>see</b> this"})
    b = await signed_in("agentb")
    _, bell = await b.get("/notifications/bell")
    assert 'aria-label="1 unread"' in bell and "Kari Agent mentioned you: “@agentb &lt;b&gt;see&lt;/b&gt; this”" in bell
    nid = int(re.search(r'href="/notifications/(\d+)"', bell).group(1))
    resp, _ = await a.get(f"/notifications/{nid}", allow_redirects=False)
    assert resp.status == 404                                            # not Kari's
    resp, _ = await b.get(f"/notifications/{nid}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/conversations/{conv}"
    _, bell = await b.get("/notifications/bell")
    assert "bell-count" not in bell and "bell-item" not in bell
    await a.post(f"/conversations/{conv}/notes", {"text": "@agentb again"})
    _, listing = await b.get("/notifications")
    assert listing.count("mentioned you in conversation") == 2
    resp, _ = await b.post("/notifications/read", {"all": "1"})
    assert resp.status == 303
    assert await _count(world, note_t, note_t.c.read_at.is_(None)) == 0
    resp, _ = await b.post("/notifications/read", {})
    assert resp.status == 400


async def test_notification_events_reach_only_their_person(signed_in, world) -> None:
    conv, bo = await _conversation(world), await _colleague(world)
    a, b = await signed_in("agent"), await signed_in("agentb")
    hub = world.core.hub
    stream_a, stream_b = await a.session.get("/events"), await b.session.get("/events")
    await _wait_for(lambda: hub.subscriber_count == 2)
    await a.post(f"/conversations/{conv}/notes", {"text": "@agentb ping"})
    expected = ("conversation-%d" % conv, '{"type": "conversation", "conversation_id": %d}' % conv)
    assert await _next_event(stream_b) == expected
    assert await _next_event(stream_b) == ("notification", '{"type": "notification"}')
    assert (await _next_event(stream_a))[0] == f"conversation-{conv}"
    hub.publish({"type": "inbox", "team_id": 1})
    assert (await _next_event(stream_a))[0] == "inbox"                     # no notification came before it
    stream_a.close()
    stream_b.close()
    await _wait_for(lambda: hub.subscriber_count == 0, timeout=20)
    agent = Viewer(bo, "agentb", "", "agent", False, 0, frozenset({1}))
    lead = Viewer(1000, "lea", "", "lead", False, 0, frozenset())
    assert sse_name({"type": "notification", "user_id": bo}) == "notification"
    assert visible({"type": "notification", "user_id": bo}, agent)
    assert not visible({"type": "notification", "user_id": bo}, lead)       # seeing every team is not enough
