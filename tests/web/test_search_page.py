"""The search page and the header's search box: results are escaped, marked, paged and team-bound."""

from __future__ import annotations

import dataclasses
from urllib.parse import quote

from socialcrm import search
from socialcrm.connector import Author
from tests.support import ev
from tests.web.conftest import conversation_of


def said(external_id: str, author: str, text: str, *, handle: str = ""):
    event = ev("message", external_id, author, author=author, text=text)
    return dataclasses.replace(event, author=Author(external_id=author, name=author.title(), handle=handle))


async def test_search_needs_a_session(browser, world) -> None:
    resp, _ = await browser().get("/search?q=x", allow_redirects=False)
    assert resp.status in (302, 303) and resp.headers["Location"].startswith("/login?next=")


async def test_every_page_has_the_search_box(signed_in) -> None:
    _, html = await (await signed_in("agent")).get("/")
    assert 'role="search"' in html and 'action="/search"' in html and 'id="header-search"' in html


async def test_results_link_the_conversation_with_the_match_marked_and_customer_text_escaped(signed_in, world) -> None:
    await world.ingest(world.care_channel, [said("m1", "kari", "<script>alert(1)</script> Hvor er refusjonen min?")])
    conv = await conversation_of(world.core, world.care_channel, "m1")
    resp, html = await (await signed_in("agent")).get("/search?q=" + quote("refusjon"))
    assert resp.status == 200
    assert f'href="/conversations/{conv}"' in html
    assert "<mark>refusjonen</mark>" in html                       # the prefix marks the whole word
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'value="refusjon"' in html


async def test_a_customer_name_in_the_query_is_escaped_too(signed_in, world) -> None:
    await world.ingest(world.care_channel, [said("m1", "kari", "hello")])
    _, html = await (await signed_in("agent")).get("/search?q=" + quote('<b>"x'))
    assert "<b>" not in html.split('id="search-results"')[1] and "&lt;b&gt;" in html


async def test_empty_and_symbol_only_queries_explain_themselves(signed_in) -> None:
    b = await signed_in("agent")
    resp, html = await b.get("/search")
    assert resp.status == 200 and "Type a word" in html
    resp, html = await b.get("/search?q=" + quote('" * - ( :'))
    assert resp.status == 200 and "use letters or digits" in html


async def test_query_syntax_from_the_user_never_breaks_the_page(signed_in, world) -> None:
    await world.ingest(world.care_channel, [said("m1", "kari", "NEAR OR ÆØÅ 🙂 col:on")])
    b = await signed_in("agent")
    for raw in ('"', "*", "-x", "col:on", "(", "NEAR", "OR", "ÆØÅ", "🙂", 'a" OR "b', "x AND (y"):
        resp, _ = await b.get("/search?q=" + quote(raw))
        assert resp.status == 200, raw


async def test_agents_of_other_teams_find_nothing_of_ours(signed_in, world) -> None:
    await world.ingest(world.care_channel, [said("m1", "kari", "secret refund", handle="kari_n")])
    _, html = await (await signed_in("outsider")).get("/search?q=refund")
    assert "/conversations/" not in html.split('id="search-results"')[1] and "No conversations match" in html
    _, html = await (await signed_in("outsider")).get("/search?q=" + quote("@kari_n"))
    assert "No conversations match" in html
    _, html = await (await signed_in("lead")).get("/search?q=" + quote("@kari_n"))
    assert "Name or handle" in html


async def test_pages_link_to_each_other(signed_in, world, monkeypatch) -> None:
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    await world.ingest(world.care_channel, [said(f"m{i}", f"c{i}", f"parcel {i}") for i in range(3)])
    b = await signed_in("agent")
    _, first = await b.get("/search?q=parcel")
    assert 'href="/search?q=parcel&amp;page=2"' in first and 'rel="prev"' not in first
    _, second = await b.get("/search?q=parcel&page=2")
    assert 'href="/search?q=parcel&amp;page=1"' in second and 'rel="next"' not in second
    resp, _ = await b.get("/search?q=parcel&page=zzz")
    assert resp.status == 200
