"""Search: words, phrases, prefixes, names and handles; hostile input stays text; teams are respected."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import sqlalchemy as sa

from socialcrm import ingest, models, search
from socialcrm.connector import Author
from socialcrm.users import Viewer
from tests.support import T0, add_team_and_channel, ev, running_core

msg_t = models.Message.__table__

LEAD = Viewer(id=0, username="lead", display_name="", role="lead", online=True, session_epoch=0, team_ids=frozenset())


def agent_of(*team_ids: int) -> Viewer:
    return Viewer(id=0, username="a", display_name="", role="agent", online=True, session_epoch=0,
                  team_ids=frozenset(team_ids))


def said(external_id: str, author: str, text: str, minute: int, *, name: str | None = None,
         handle: str = "", public: bool = False, thread: str | None = None):
    event = ev("comment" if public else "message", external_id, thread or author, author=author, text=text,
               public=public, at=T0 + timedelta(minutes=minute))
    return dataclasses.replace(event, author=Author(external_id=author, name=name or author.title(), handle=handle))


async def put(core, channel_id, events) -> None:
    channel = await core.channels.get(channel_id)
    async with core.engine.begin() as conn:
        await ingest.apply(conn, channel.info, events)


async def conv(core, external_id: str) -> int:
    async with core.engine.connect() as conn:
        return await conn.scalar(sa.select(msg_t.c.conversation_id).where(msg_t.c.external_id == external_id))


@pytest.fixture
async def seeded(database_url):
    async with running_core(database_url) as core:
        care = await add_team_and_channel(core, "Care", "brand")
        other = await add_team_and_channel(core, "Other", "brand-2", secret="s2")
        await put(core, care, [
            said("m1", "kari", "Pakken min er ikke kommet, ordre 5512", 1, name="Kari Nordmann", handle="kari_n"),
            said("m2", "ola", "Hvor er refusjonen? Jeg venter på blåbærsyltetøy", 2, name="Ola Ås", handle="ola.aas"),
            said("m3", "per", "The refund never came. Very late delivery!", 3, name="Per Persson", handle="perp"),
            said("m4", "kari", "Fortsatt ingen pakke 😡 (NEAR OR \"quoted\") -minus col:on", 4, name="Kari Nordmann"),
        ])
        await put(core, other, [said("x1", "eva", "refund for pakken please", 5, name="Eva Other", handle="eva")])
        core.test_channels = (care, other)   # type: ignore[attr-defined]
        yield core


async def ids(core, raw: str, viewer: Viewer = LEAD) -> list[int]:
    return [r.conversation_id for r in (await search.search(core.engine, viewer, raw)).results]


async def test_all_words_must_match_and_newest_comes_first(seeded):
    core = seeded
    assert await ids(core, "refund") == [await conv(core, "x1"), await conv(core, "m3")]
    assert await ids(core, "refund late") == [await conv(core, "m3")]
    assert await ids(core, "refund nowhere-to-be-found") == []


async def test_phrase_needs_the_words_together(seeded):
    core = seeded
    assert await ids(core, '"late delivery"') == [await conv(core, "m3")]
    assert await ids(core, '"delivery late"') == []


async def test_last_word_is_a_prefix_as_you_type(seeded):
    core = seeded
    assert await ids(core, "refusj") == [await conv(core, "m2")]
    assert await ids(core, "blåbær") == [await conv(core, "m2")]      # the start of blåbærsyltetøy
    assert await ids(core, "refusj venter") == []                      # only the last word is a prefix


async def test_names_and_handles_find_the_customer_with_or_without_at(seeded):
    core = seeded
    per = await conv(core, "m3")
    assert await ids(core, "Persson") == [per]
    assert await ids(core, "@perp") == [per] and await ids(core, "perp") == [per]
    assert await ids(core, "@ola.aas") == [await conv(core, "m2")]
    assert await ids(core, "ÅS") == [await conv(core, "m2")]            # case folds for Norwegian letters too
    found = (await search.search(core.engine, LEAD, "persson")).results[0]
    assert found.source == "person" and found.customer_handle == "perp"


@pytest.mark.parametrize("raw", ['"', '""', "*", "-", ":", "(", ")", "NEAR", "OR", "AND", "NOT", 'pakke"', "col:on",
                                 "^", "😡", "ÆØÅ", "NEAR(a b)", "a OR b", "'", "\\", "%", "_", "a:*", "!", "&|"])
async def test_hostile_input_is_only_ever_text(seeded, raw):
    core = seeded
    page = await search.search(core.engine, LEAD, raw)      # never a syntax error from the database
    for result in page.results:
        assert result.conversation_id > 0


async def test_operators_are_searched_as_words(seeded):
    core = seeded
    kari_later = await conv(core, "m4")
    assert await ids(core, "NEAR OR") == [kari_later]
    assert await ids(core, '"quoted"') == [kari_later]
    assert await ids(core, "col:on") == [kari_later]
    assert await ids(core, "-minus") == [kari_later]
    assert await ids(core, "pakke 😡") == [kari_later]                  # the emoji is ignored, the word counts


async def test_empty_query_is_empty_not_an_error(seeded):
    for raw in ("", "   ", '"  "', "😡", "-"):
        page = await search.search(seeded.engine, LEAD, raw)
        assert page.query.empty and page.results == []


async def test_agents_only_find_their_teams(seeded):
    core = seeded
    care, other = core.test_channels
    team_of = {}
    async with core.engine.connect() as conn:
        for row in (await conn.execute(sa.select(models.Channel.__table__.c.id, models.Channel.__table__.c.team_id))):
            team_of[row.id] = row.team_id
    assert await ids(core, "refund", agent_of(team_of[care])) == [await conv(core, "m3")]
    assert await ids(core, "eva", agent_of(team_of[care])) == []
    assert await ids(core, "refund", agent_of(team_of[other])) == [await conv(core, "x1")]


async def test_notes_and_edits_are_searchable_and_deleted_messages_are_not(seeded):
    core = seeded
    kari = await conv(core, "m1")
    async with core.engine.begin() as conn:
        await conn.execute(msg_t.insert().values(conversation_id=kari, channel_id=core.test_channels[0], direction="note",
                                                 text="internal: kunden er VIP", status="received", attachments=[], reactions={},
                                                 created_at=T0 + timedelta(minutes=9)))
        await conn.execute(msg_t.update().where(msg_t.c.external_id == "m3").values(text="edited to say thanks"))
        await conn.execute(msg_t.update().where(msg_t.c.external_id == "x1").values(deleted=True))
    assert await ids(core, "vip") == [kari]
    assert (await search.search(core.engine, LEAD, "vip")).results[0].source == "note"
    assert await ids(core, "late") == []
    assert await ids(core, "thanks") == [await conv(core, "m3")]
    assert await ids(core, "refund") == []


async def test_one_row_per_conversation_with_its_newest_match(seeded):
    core = seeded
    found = (await search.search(core.engine, LEAD, "pak")).results
    kari = await conv(core, "m1")
    assert [r.conversation_id for r in found].count(kari) == 1
    assert any(piece == "pakke" and match for piece, match in next(r for r in found if r.conversation_id == kari).snippet)


async def test_pages(database_url, monkeypatch):
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    async with running_core(database_url) as core:
        care = await add_team_and_channel(core)
        await put(core, care, [said(f"p{i}", f"cust{i}", f"parcel number {i}", i) for i in range(5)])
        first = await search.search(core.engine, LEAD, "parcel")
        third = await search.search(core.engine, LEAD, "parcel", page=3)
        assert first.has_more and not third.has_more
        assert [r.snippet for r in first.results][0][-1][0].endswith("4")
        assert len(third.results) == 1 and third.results[0].snippet[-1][0].endswith("0")


def test_snippet_marks_matches_without_markup():
    pieces = search.snippet("Hei <b>Ola</b>, pakken din er på vei", [("pakke", True), ("ola", False), ("di", False)])
    assert ("Ola", True) in pieces and ("pakken", True) in pieces and ("din", True) not in pieces
    assert "".join(p for p, _ in pieces) == "Hei <b>Ola</b>, pakken din er på vei"   # escaping is the template's


def test_parse_quotes_every_term_for_fts5():
    q = search.parse('ola "late delivery" NEAR(x) refu')
    assert search.fts5_match(q) == '"late delivery" "ola" "NEAR(x)" "refu"*'
    assert search.fts5_match(search.parse('a"b')) == '"a" "b"'
    assert search.parse("ab").terms[-1].prefix is False      # too short to be a prefix
    assert not any(t.prefix for t in search.parse('refund "late delivery"').terms)   # typed last: a phrase
    assert search.fts5_match(search.parse('ola "late deliv')) == '"ola" "late" "deliv"*'   # unclosed quote
