"""Inbox filters in the query string, and bulk assign / tag / resolve in one POST."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from socialcrm import models, snooze, tags
from socialcrm.models import utcnow
from socialcrm.users import create_user
from tests.support import ev
from tests.web.conftest import PASSWORD, conversation_of

conv_t, event_t, tag_t = models.Conversation.__table__, models.ConversationEvent.__table__, models.ConversationTag.__table__
ROW_ID = re.compile(r'data-conversation-id="(\d+)"')


async def _conversations(world) -> dict[str, int]:
    """dm-a, dm-b private and pub-c public in Care; dm-x in Other."""
    await world.ingest(world.care_channel, [ev("message", "a", "dm-a", author="ca", text="A"),
                                            ev("message", "b", "dm-b", author="cb", text="B"),
                                            ev("comment", "c", "post-1", author="cc", text="C", public=True)])
    await world.ingest(world.other_channel, [ev("message", "x", "dm-x", author="cx", text="X")])
    return {k: await conversation_of(world.core, world.care_channel if k != "x" else world.other_channel, k)
            for k in ("a", "b", "c", "x")}


def _rows(html: str) -> list[int]:
    return [int(i) for i in ROW_ID.findall(html)]


async def test_filters_combine_and_the_view_is_a_bookmarkable_url(signed_in, world) -> None:
    ids = await _conversations(world)
    await tags.add(world.core.engine, ids["a"], "billing", None)
    await tags.add(world.core.engine, ids["c"], "billing", None)
    await snooze.snooze(world.core, ids["b"], utcnow() + snooze.PRESETS["1d"][1], None)
    b = await signed_in("agent")
    _, html = await b.get("/?tag=billing")
    assert sorted(_rows(html)) == sorted([ids["a"], ids["c"]])
    assert 'hx-get="/inbox/list?tag=billing"' in html
    _, html = await b.get("/?tag=billing&visibility=public")
    assert _rows(html) == [ids["c"]]
    _, html = await b.get("/?status=snoozed")
    assert _rows(html) == [ids["b"]] and "snoozed" in html
    _, html = await b.get(f"/?channel={world.care_channel}&assignee=unassigned")
    assert sorted(_rows(html)) == sorted([ids["a"], ids["c"]])
    _, html = await b.get("/?language=nb")
    assert _rows(html) == [] and "No conversation matches these filters." in html
    _, html = await b.get("/inbox/list?tag=billing&visibility=private")
    assert _rows(html) == [ids["a"]]
    _, html = await b.get(f"/?channel={world.other_channel}")           # another team's channel: nothing shown
    assert _rows(html) == []


@pytest.mark.parametrize(("query", "reason"), [
    ("status=closed", "The status filter takes one of open, pending, snoozed, resolved, spam"),
    ("channel=abc", "The channel filter takes a number"),
    ("assignee=bob", "The assignee filter takes me, unassigned"),
    ("tag=%3Cb%3E", "The tag filter: A tag may use letters"),
    ("language=%27%3B--", "The language filter takes a language code"),
    ("status=open&page=0", "Pages go from 1 to 100"),
])
async def test_a_bad_filter_is_a_400_with_the_reason(signed_in, world, query, reason) -> None:
    b = await signed_in("agent")
    for path in ("/", "/inbox/list"):
        resp, html = await b.get(f"{path}?{query}")
        assert resp.status == 400 and reason in html


async def test_the_rows_have_labelled_checkboxes_for_the_bulk_form(signed_in, world) -> None:
    ids = await _conversations(world)
    b = await signed_in("agent")
    _, html = await b.get("/")
    assert f'<input type="checkbox" name="conversation" value="{ids["a"]}" form="bulk-form"' in html
    assert 'aria-label="Select the conversation with Ca"' in html
    assert 'id="bulk-select-all"' in html and 'aria-label="Select all conversations shown"' in html
    assert '<form id="bulk-form" method="post" action="/inbox/bulk"' in html and 'name="csrf_token"' in html


async def test_bulk_resolve_reports_changed_and_skipped_and_logs_each(signed_in, world) -> None:
    ids = await _conversations(world)
    b = await signed_in("agent")
    await b.post(f"/conversations/{ids['b']}/resolution", {"reason": "answered"})
    form = {"action": "resolve", "reason": "duplicate", "next": "/?tab=all"}
    resp = await b.session.post("/inbox/bulk", data=[*form.items(), ("csrf_token", b.csrf),
                                                     *[("conversation", str(ids[k])) for k in "abcx"]],
                                allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/?tab=all"
    _, html = await b.get("/?tab=all")
    assert (f"Resolved 2 conversations. Skipped 2: #{ids['b']} already resolved; #{ids['x']} not found."
            in html)
    _, again = await b.get("/?tab=all")
    assert "Resolved 2 conversations" not in again                        # said once
    async with world.core.engine.connect() as conn:
        status = dict((await conn.execute(sa.select(conv_t.c.id, conv_t.c.status))).all())
        resolved = (await conn.execute(sa.select(event_t.c.conversation_id, event_t.c.user_id, event_t.c.detail)
                                       .where(event_t.c.kind == "resolved").order_by(event_t.c.id))).all()
    assert status[ids["a"]] == status[ids["c"]] == "resolved" and status[ids["x"]] == "open"
    assert [(r.conversation_id, r.user_id, r.detail) for r in resolved[1:]] == [
        (ids["a"], world.agent_id, {"reason": "Duplicate"}), (ids["c"], world.agent_id, {"reason": "Duplicate"})]


async def _bulk(b, ids: list[int], **form: str):
    data = [*form.items(), ("csrf_token", b.csrf), *[("conversation", str(i)) for i in ids]]
    resp = await b.session.post("/inbox/bulk", data=data, allow_redirects=False)
    return resp, await resp.text()


async def test_bulk_assign_and_tag(signed_in, world) -> None:
    ids = await _conversations(world)
    bo = (await create_user(world.core.engine, "agentb", PASSWORD, "agent", "Bo Agent", ["Care"])).id
    b = await signed_in("agent")
    resp, _ = await _bulk(b, [ids["a"], ids["c"]], action="assign", assignee=str(bo))
    assert resp.status == 303
    resp, _ = await _bulk(b, [ids["a"], ids["b"]], action="tag", tag=" Urgent ")
    _, html = await b.get("/")
    assert "Tagged 2 conversations." in html
    resp, _ = await _bulk(b, [ids["a"], ids["b"]], action="tag", tag="urgent")
    _, html = await b.get("/")
    assert f"Tagged 0 conversations. Skipped 2: #{ids['a']} already tagged; #{ids['b']} already tagged." in html
    async with world.core.engine.connect() as conn:
        assignees = dict((await conn.execute(sa.select(conv_t.c.id, conv_t.c.assignee_id))).all())
        tagged = sorted((await conn.execute(sa.select(tag_t.c.conversation_id).where(tag_t.c.tag == "urgent"))).scalars())
        assigned = (await conn.execute(sa.select(event_t.c.conversation_id, event_t.c.user_id, event_t.c.detail)
                                       .where(event_t.c.kind == "assigned"))).all()
    assert assignees[ids["a"]] == assignees[ids["c"]] == bo and assignees[ids["b"]] is None
    assert tagged == sorted([ids["a"], ids["b"]])
    assert sorted((r.conversation_id, r.user_id, r.detail["assignee_id"]) for r in assigned) == sorted(
        [(ids["a"], world.agent_id, bo), (ids["c"], world.agent_id, bo)])


async def test_bad_bulk_requests_are_refused_whole(signed_in, world) -> None:
    ids = await _conversations(world)
    b = await signed_in("agent")
    cases = [({"action": "delete"}, "Choose assign, tag or resolve."),
             ({"action": "assign", "assignee": str(world.outsider_id)}, "Choose someone from your teams"),
             ({"action": "tag", "tag": "a b c" * 20}, "at most 40"),
             ({"action": "resolve", "reason": "bogus"}, "not one of the resolve reasons")]
    for form, reason in cases:
        resp, html = await _bulk(b, [ids["a"]], **form)
        assert resp.status == 400 and reason in html, form
    resp, html = await _bulk(b, [], action="resolve")
    assert resp.status == 400 and "Select at least one conversation first." in html
    resp, html = await _bulk(b, list(range(1, 102)), action="resolve")
    assert resp.status == 400 and "at most 100" in html
    resp = await b.session.post("/inbox/bulk", data={"action": "resolve", "conversation": str(ids["a"])},
                                allow_redirects=False)
    assert resp.status == 403                                                # no CSRF token
    async with world.core.engine.connect() as conn:
        assert set((await conn.execute(sa.select(conv_t.c.status))).scalars()) == {"open"}
        assert await conn.scalar(sa.select(sa.func.count()).select_from(tag_t)) == 0


async def test_a_filtered_view_is_paged(signed_in, world, monkeypatch) -> None:
    from socialcrm import inbox

    monkeypatch.setattr(inbox, "PAGE_SIZE", 2)
    ids = await _conversations(world)
    b = await signed_in("agent")
    _, first = await b.get("/?status=open")
    assert len(_rows(first)) == 2 and 'href="/?status=open&amp;page=2" rel="next"' in first
    _, second = await b.get("/?status=open&page=2")
    assert len(_rows(second)) == 1 and 'rel="prev"' in second and 'rel="next"' not in second
    assert sorted(_rows(first) + _rows(second)) == sorted([ids["a"], ids["b"], ids["c"]])
