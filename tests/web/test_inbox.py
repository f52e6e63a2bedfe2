"""The inbox as rendered: order, tabs, visibility, bounded counts."""

from __future__ import annotations

import re
from datetime import timedelta

from socialcrm import inbox as queries
from socialcrm.models import utcnow
from tests.support import ev
from tests.web.conftest import conversation_of

ROW_ID = re.compile(r'data-conversation-id="(\d+)" data-public="(true|false)"')


def rendered_rows(html: str) -> list[tuple[int, bool]]:
    return [(int(i), p == "true") for i, p in ROW_ID.findall(html)]


async def test_public_comes_before_private_even_when_private_is_older(signed_in, world) -> None:
    now = utcnow()
    await world.ingest(world.care_channel, [
        ev("message", "dm-old", "cust-a", author="cust-a", text="private, waiting longest", at=now - timedelta(hours=3)),
        ev("comment", "c-new", "post-1", author="cust-b", public=True, text="public, just now", at=now),
        ev("message", "dm-new", "cust-c", author="cust-c", text="private, just now", at=now),
    ])
    b = await signed_in("agent")
    _, html = await b.get("/")
    rows = rendered_rows(html)
    assert [public for _, public in rows] == [True, False, False]
    assert rows[0][0] == await conversation_of(world.core, world.care_channel, "c-new")
    assert rows[1][0] == await conversation_of(world.core, world.care_channel, "dm-old"), "older private first"
    assert html.index("public, just now") < html.index("private, waiting longest")


async def test_row_shows_channel_customer_preview_and_sla(signed_in, world) -> None:
    await world.ingest(world.care_channel, [
        ev("comment", "c-1", "post-1", author="ola", name="Ola Nordmann", public=True,
           text="Where is my parcel?\nsecond line", at=utcnow() - timedelta(minutes=70)),
    ])
    b = await signed_in("agent")
    _, html = await b.get("/")
    assert "Ola Nordmann" in html and "Sim brand" in html
    assert "Where is my parcel?" in html and "second line" not in html
    assert "overdue 10 min" in html, "public SLA is 60 min; the comment is 70 min old"
    assert "Public" in html


async def test_agent_sees_only_their_teams_lead_sees_all(signed_in, world) -> None:
    await world.ingest(world.care_channel, [ev("message", "m-care", "c1", author="c1", text="care team msg")])
    await world.ingest(world.other_channel, [ev("message", "m-other", "c2", author="c2", text="other team msg")])
    _, agent_html = await (await signed_in("agent")).get("/")
    assert "care team msg" in agent_html and "other team msg" not in agent_html
    _, lead_html = await (await signed_in("lead")).get("/")
    assert "care team msg" in lead_html and "other team msg" in lead_html


async def test_tabs_filter(signed_in, world) -> None:
    await world.ingest(world.care_channel, [
        ev("comment", "c-1", "post-1", author="pub", public=True, text="a public one"),
        ev("message", "m-1", "priv", author="priv", text="a private one"),
    ])
    b = await signed_in("agent")
    _, html = await b.get("/?tab=public")
    assert "a public one" in html and "a private one" not in html
    _, html = await b.get("/?tab=mine")
    assert "Nothing waiting here." in html
    _, html = await b.get("/inbox/list?tab=unassigned")
    assert "a public one" in html and "a private one" in html and "<html" not in html, "a partial, not a page"
    resp, _ = await b.get("/?tab=bogus")
    assert resp.status == 404


async def test_mine_tab_after_assign_to_me(signed_in, world) -> None:
    await world.ingest(world.care_channel, [ev("message", "m-1", "priv", author="priv", text="help me")])
    conv = await conversation_of(world.core, world.care_channel, "m-1")
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    resp, _ = await b.post(f"/conversations/{conv}/assign", {"assignee": "me"})
    assert resp.status == 303
    _, html = await b.get("/?tab=mine")
    assert rendered_rows(html) == [(conv, False)]
    assert "Kari Agent" in html


async def test_counts_are_bounded(signed_in, world, monkeypatch) -> None:
    monkeypatch.setattr(queries, "COUNT_CAP", 3)
    await world.ingest(world.care_channel, [
        ev("message", f"m-{i}", f"cust-{i}", author=f"cust-{i}", text=f"msg {i}") for i in range(5)])
    b = await signed_in("agent")
    _, html = await b.get("/")
    assert re.search(r'All open <span class="count">2\+</span>', html)
    assert re.search(r'Public <span class="count">0</span>', html)


async def test_presence_toggle_goes_online_and_back(signed_in, world) -> None:
    import sqlalchemy as sa

    from socialcrm import models

    u = models.User.__table__

    async def online() -> bool:
        async with world.core.engine.connect() as conn:
            return bool(await conn.scalar(sa.select(u.c.online).where(u.c.id == world.agent_id)))

    b = await signed_in("agent")
    _, html = await b.get("/?tab=public")
    assert ">Go online</button>" in html and 'name="next" value="/?tab=public"' in html
    resp, _ = await b.post("/presence", {"online": "1", "next": "/?tab=public"})
    assert resp.status == 303 and resp.headers["Location"] == "/?tab=public"
    assert await online()
    _, html = await b.get("/")
    assert ">Go offline</button>" in html
    resp, _ = await b.post("/presence", {"online": "0", "next": "https://evil.example/"})
    assert resp.headers["Location"] == "/"
    assert not await online()
