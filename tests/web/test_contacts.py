"""The contact panel and page, and deciding merge suggestions over HTTP (CSRF, teams, refusals)."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from socialcrm import audit, merge, models
from socialcrm.connector import Author
from tests.support import ev
from tests.web.conftest import conversation_of

ident_t, sugg_t = models.Identity.__table__, models.MergeSuggestion.__table__


def said(external_id: str, author: str, text: str, *, name: str = "", handle: str = "", avatar: str = ""):
    event = ev("message", external_id, author, author=author, text=text)
    return dataclasses.replace(event, author=Author(external_id=author, name=name or author.title(), handle=handle,
                                                    avatar_url=avatar or None))


async def two_customers(world, second_channel: int | None = None) -> tuple[int, int, int]:
    """Two contacts who wrote the same address (on two Care conversations); (suggestion, conv a, conv b)."""
    await world.ingest(world.care_channel, [said("m1", "ola-fb", "my mail is ola@example.no", name="Ola N",
                                                 handle="ola_fb", avatar="https://cdn.example/ola.jpg")])
    await world.ingest(second_channel or world.care_channel, [said("m2", "ola-mail", "ola@example.no again",
                                                                   name="Ola Nordmann")])
    await merge.detect(world.core.engine)
    async with world.core.engine.connect() as conn:
        sid = await conn.scalar(sa.select(sugg_t.c.id))
    return (sid, await conversation_of(world.core, world.care_channel, "m1"),
            await conversation_of(world.core, second_channel or world.care_channel, "m2"))


async def contact_ids(world) -> set[int]:
    async with world.core.engine.connect() as conn:
        return set((await conn.scalars(sa.select(ident_t.c.contact_id))).all())


async def test_the_conversation_page_loads_the_whole_customer_into_its_panel(signed_in, world) -> None:
    _, conv_a, _ = await two_customers(world)
    b = await signed_in("agent")
    _, page = await b.get(f"/conversations/{conv_a}")
    assert 'hx-trigger="load"' in page and "/panel?conversation=" in page
    contact = page.split('hx-get="/contacts/')[1].split("/panel")[0]
    resp, panel = await b.get(f"/contacts/{contact}/panel?conversation={conv_a}")
    assert resp.status == 200
    assert "Same person?" in panel and "both wrote ola@example.no" in panel
    assert "@ola_fb" in panel and 'src="https://cdn.example/ola.jpg"' in panel
    assert f'href="/conversations/{conv_a}" aria-current="page"' in panel
    assert f'name="next" value="/conversations/{conv_a}"' in panel and 'name="csrf_token"' in panel


async def test_accept_then_undo_over_http_with_audit(signed_in, world) -> None:
    sid, conv_a, conv_b = await two_customers(world)
    b = await signed_in("agent")
    _, page = await b.get(f"/conversations/{conv_a}")
    resp, _ = await b.post(f"/merge-suggestions/{sid}/accept", {"next": f"/conversations/{conv_a}"})
    assert resp.status == 303 and resp.headers["Location"] == f"/conversations/{conv_a}"
    assert len(await contact_ids(world)) == 1
    contact = page.split('hx-get="/contacts/')[1].split("/panel")[0]
    _, panel = await b.get(f"/contacts/{contact}/panel?conversation={conv_a}")
    assert "@ola_fb" in panel and "Ola Nordmann" in panel
    assert f'href="/conversations/{conv_b}"' in panel and "Undo merge" in panel
    resp, _ = await b.post(f"/merge-suggestions/{sid}/undo", {"next": f"/conversations/{conv_a}"})
    assert resp.status == 303
    assert len(await contact_ids(world)) == 2
    _, panel = await b.get(f"/contacts/{contact}/panel?conversation={conv_a}")
    assert f'href="/conversations/{conv_b}"' not in panel and "Same person?" in panel
    actions = [e.action for e in await audit.entries(world.core.engine, action="contact")]
    assert actions == ["contact.unmerge", "contact.merge"]


async def test_deciding_needs_the_csrf_token(signed_in, world) -> None:
    sid, _, _ = await two_customers(world)
    b = await signed_in("agent")
    resp, _ = await b.post(f"/merge-suggestions/{sid}/accept", csrf=False)
    assert resp.status == 403 and len(await contact_ids(world)) == 2


async def test_an_agent_who_cannot_see_both_customers_gets_404_and_nothing_changes(signed_in, world) -> None:
    sid, _, _ = await two_customers(world, second_channel=world.other_channel)
    for who in ("agent", "outsider"):    # each sees only one of the two
        b = await signed_in(who)
        resp, _ = await b.post(f"/merge-suggestions/{sid}/accept")
        assert resp.status == 404
    assert len(await contact_ids(world)) == 2
    b = await signed_in("lead")
    resp, _ = await b.post(f"/merge-suggestions/{sid}/accept")
    assert resp.status == 303 and len(await contact_ids(world)) == 1


async def test_a_second_accept_is_refused_in_words(signed_in, world) -> None:
    sid, _, _ = await two_customers(world)
    b = await signed_in("agent")
    assert (await b.post(f"/merge-suggestions/{sid}/accept"))[0].status == 303
    resp, html = await b.post(f"/merge-suggestions/{sid}/accept")
    assert resp.status == 409 and "already accepted" in html
    assert len(await audit.entries(world.core.engine, action="contact.merge")) == 1


async def test_dismiss_hides_the_suggestion(signed_in, world) -> None:
    sid, conv_a, _ = await two_customers(world)
    b = await signed_in("agent")
    resp, _ = await b.post(f"/merge-suggestions/{sid}/dismiss", {"next": "//evil.example/"})
    assert resp.status == 303 and resp.headers["Location"] == "/"       # never an open redirect
    _, page = await b.get(f"/conversations/{conv_a}")
    contact = page.split('hx-get="/contacts/')[1].split("/panel")[0]
    _, html = await b.get(f"/contacts/{contact}")
    assert "Same person?" not in html and "both wrote" not in html
    assert ">Customer page</a>" not in html and 'aria-label="Conversation pages"' in html   # the page, not the panel
    assert resp.status == 303 and len(await contact_ids(world)) == 2


async def test_contact_page_and_panel_are_404_for_other_teams_and_missing_ids(signed_in, world) -> None:
    _, conv_a, _ = await two_customers(world)
    b = await signed_in("agent")
    _, page = await b.get(f"/conversations/{conv_a}")
    contact = page.split('hx-get="/contacts/')[1].split("/panel")[0]
    outsider = await signed_in("outsider")
    for path in (f"/contacts/{contact}", f"/contacts/{contact}/panel", "/contacts/99999", "/contacts/" + "9" * 30):
        assert (await outsider.get(path))[0].status == 404
    assert (await b.get(f"/contacts/{contact}?page=x"))[0].status == 200
    assert (await b.post("/merge-suggestions/99999/accept"))[0].status == 404
    assert (await b.post("/merge-suggestions/" + "9" * 30 + "/accept"))[0].status == 404
    assert (await b.get(f"/contacts/{contact}/panel?conversation=" + "9" * 30))[0].status == 200


async def test_the_panel_is_bounded_and_the_page_shows_the_rest(signed_in, world, monkeypatch) -> None:
    from socialcrm.web import contacts

    monkeypatch.setattr(contacts, "PAGE_CONVERSATIONS", 5)
    events = [dataclasses.replace(ev("comment", f"c{i}", f"post-{i}", author="kari", public=True, text=f"comment {i}"),
                                  author=Author(external_id="kari", name="Kari")) for i in range(12)]
    await world.ingest(world.care_channel, events)
    conv = await conversation_of(world.core, world.care_channel, "c0")
    b = await signed_in("agent")
    _, page = await b.get(f"/conversations/{conv}")
    contact = page.split('hx-get="/contacts/')[1].split("/panel")[0]
    _, panel = await b.get(f"/contacts/{contact}/panel?conversation={conv}")
    assert panel.count('href="/conversations/') == merge.PANEL_CONVERSATIONS
    assert "All conversations of this customer" in panel
    _, third = await b.get(f"/contacts/{contact}?page=3")
    assert third.count('href="/conversations/') == 2 and 'rel="prev"' in third and 'rel="next"' not in third


async def test_admins_read_merges_in_the_audit_log(signed_in, world) -> None:
    from socialcrm.users import create_user
    from tests.web.conftest import PASSWORD

    await create_user(world.core.engine, "root", PASSWORD, "admin", "Ada Admin")
    sid, _, _ = await two_customers(world)
    await (await signed_in("agent")).post(f"/merge-suggestions/{sid}/accept")
    _, html = await (await signed_in("root")).get("/admin/audit?action=contact")
    assert "contact.merge" in html and "both wrote ola@example.no" in html
