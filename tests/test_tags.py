"""Tags: normalised free text, many per conversation, logged, and a filter of the inbox."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from socialcrm import filters, inbox, ingest, models, tags
from socialcrm.users import Viewer, create_user
from tests.support import T0, add_team_and_channel, ev, minutes, running_core

event_t, conv_t = models.ConversationEvent.__table__, models.Conversation.__table__


@pytest.mark.parametrize(("raw", "stored"), [
    ("Billing", "billing"), ("  refund  request ", "refund-request"), ("Ærlig_klage", "ærlig_klage"),
    ("v2.1/api", "v2.1/api"), ("x" * 40, "x" * 40),
])
def test_tags_are_normalised(raw, stored):
    assert tags.normalise(raw) == stored


@pytest.mark.parametrize(("raw", "why"), [
    ("", "Write a tag first"), ("   ", "Write a tag first"), ("x" * 41, "at most 40"),
    ("<b>", "letters, digits"), ("-lead", "start with a letter"), ("_x", "start with a letter"), ("a,b", "letters"),
])
def test_bad_tags_are_refused_in_words(raw, why):
    with pytest.raises(tags.TagRejected, match=why):
        tags.normalise(raw)


async def _three_conversations(core) -> tuple[list[int], Viewer]:
    ch = await add_team_and_channel(core)
    info = (await core.channels.get(ch)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("message", f"m{i}", f"dm{i}", author=f"c{i}", at=T0 + minutes(i))
                                        for i in range(3)], now=T0 + minutes(5))
        ids = list((await conn.execute(sa.select(conv_t.c.id).order_by(conv_t.c.id))).scalars())
    user = await create_user(core.engine, "kari", "correct horse battery", "agent", "Kari", ["Care"])
    return ids, Viewer(user.id, "kari", "Kari", "agent", False, 0, frozenset({1}))


async def test_adding_is_idempotent_and_every_change_is_logged(database_url):
    async with running_core(database_url) as core:
        (a, b, _), viewer = await _three_conversations(core)
        assert await tags.add(core.engine, a, " Billing", viewer.id) is True
        assert await tags.add(core.engine, a, "BILLING", viewer.id) is False
        assert await tags.add(core.engine, a, "vip", viewer.id) is True
        assert await tags.add(core.engine, b, "billing", viewer.id) is True
        assert await tags.remove(core.engine, a, "vip", viewer.id) is True
        assert await tags.remove(core.engine, a, "vip", viewer.id) is False
        async with core.engine.connect() as conn:
            assert await tags.tags_of(conn, [a, b, 999]) == {a: ["billing"], b: ["billing"], 999: []}
            logged = (await conn.execute(sa.select(event_t.c.conversation_id, event_t.c.kind, event_t.c.detail,
                                                   event_t.c.user_id)
                                         .where(event_t.c.kind.in_(["tagged", "untagged"])).order_by(event_t.c.id))).all()
        assert [(r.conversation_id, r.kind, r.detail["tag"], r.user_id) for r in logged] == [
            (a, "tagged", "billing", viewer.id), (a, "tagged", "vip", viewer.id), (b, "tagged", "billing", viewer.id),
            (a, "untagged", "vip", viewer.id)]
        assert await tags.known_tags(core.engine) == ["billing"]


async def test_the_inbox_filters_by_tag_and_shows_each_rows_tags(database_url):
    async with running_core(database_url) as core:
        (a, b, c), viewer = await _three_conversations(core)
        await tags.add(core.engine, a, "billing", viewer.id)
        await tags.add(core.engine, c, "billing", viewer.id)
        await tags.add(core.engine, c, "vip", viewer.id)
        view = await inbox.filtered_view(core.engine, viewer, filters.parse({"tag": "Billing"}), now=T0)
        assert [(r.id, r.tags) for r in view.rows] == [(a, ("billing",)), (c, ("billing", "vip"))]
        both = await inbox.filtered_view(core.engine, viewer, filters.parse({"tag": "vip", "visibility": "private"}))
        assert [r.id for r in both.rows] == [c]
        plain = await inbox.view(core.engine, viewer, "all", now=T0)
        assert {r.id: r.tags for r in plain.rows} == {a: ("billing",), b: (), c: ("billing", "vip")}


async def test_known_tags_walks_the_index_in_order_and_stops_at_the_limit(database_url, monkeypatch):
    monkeypatch.setattr(tags, "SUGGESTIONS", 3)
    async with running_core(database_url) as core:
        (a, b, c), viewer = await _three_conversations(core)
        assert await tags.known_tags(core.engine) == []
        for conv, tag in [(a, "zeta"), (b, "alpha"), (c, "alpha"), (a, "mid"), (b, "beta"), (c, "omega")]:
            await tags.add(core.engine, conv, tag, viewer.id)
        assert await tags.known_tags(core.engine) == ["alpha", "beta", "mid"]
        monkeypatch.setattr(tags, "SUGGESTIONS", 10)
        assert await tags.known_tags(core.engine) == ["alpha", "beta", "mid", "omega", "zeta"]
