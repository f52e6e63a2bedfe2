"""The dashboard over HTTP: roles, numbers that link to their conversations, CSV, bad periods."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import sqlalchemy as sa

from connectors.simulator import SimulatorConnector
from socialcrm import models
from socialcrm.models import utcnow
from socialcrm.registry import Registry
from socialcrm.seed import Options, seed
from tests.web.conftest import SignIn, World

ROUTES = ("/dashboard", "/dashboard/live", "/dashboard/conversations?figure=conversations", "/dashboard.csv",
          "/dashboard/conversations?live=open")
EVIL = '=HYPERLINK("http://evil.test","<b>x</b>")'


async def _seed(world: World, conversations: int = 60) -> None:
    await seed(world.core.engine, Registry([SimulatorConnector]), world.core.vault,
               Options(conversations=conversations, days=5, agents=3, seed=3, channels=1))


def _cell_link(page: str, table: str, figure: str) -> tuple[str, str]:
    """The first linked number of a column in one table: (href, text)."""
    start = page.index(f'data-table="{table}"')
    found = re.search(rf'data-figure="{figure}"><a href="([^"]+)">([^<]+)</a>', page[start:])
    assert found, f"no linked {figure} in table {table}"
    return html.unescape(found.group(1)), found.group(2)


async def test_agents_get_403_everywhere_and_no_nav_link(signed_in: SignIn) -> None:
    agent = await signed_in("agent")
    for route in ROUTES:
        resp, _ = await agent.get(route)
        assert resp.status == 403, route
    _, inbox = await agent.get("/")
    assert 'href="/dashboard"' not in inbox
    lead = await signed_in("lead")
    _, inbox = await lead.get("/")
    assert 'href="/dashboard"' in inbox


async def test_a_number_links_to_exactly_the_conversations_behind_it(signed_in: SignIn, world: World) -> None:
    await _seed(world)
    lead = await signed_in("lead")
    resp, page = await lead.get("/dashboard?range=7d")
    assert resp.status == 200
    assert "Response times" in page and "<svg" in page and 'href="/dashboard/satisfaction"' in page
    href, number = _cell_link(page, "visibility", "conversations")
    resp, listing = await lead.get(href)
    assert resp.status == 200
    assert re.search(r'id="drill-total">(\d+)<', listing).group(1) == number
    ids = re.findall(r'<a href="/conversations/(\d+)">#', listing)
    assert len(ids) == min(int(number), 50)
    resp, _ = await lead.get(f"/conversations/{ids[0]}")
    assert resp.status == 200, "a seeded conversation opens like any other"
    href, number = _cell_link(page, "all", "breached")
    _, listing = await lead.get(href)
    assert re.search(r'id="drill-total">(\d+)<', listing).group(1) == number
    assert "breached" in listing


async def test_drill_down_pages_through_a_long_list(signed_in: SignIn, world: World) -> None:
    await _seed(world, conversations=130)
    lead = await signed_in("lead")
    _, page = await lead.get("/dashboard?range=7d")
    href, number = _cell_link(page, "all", "conversations")
    assert int(number) == 130
    _, first = await lead.get(href)
    _, third = await lead.get(href + "&page=3")
    first_ids = re.findall(r'<a href="/conversations/(\d+)">#', first)
    third_ids = re.findall(r'<a href="/conversations/(\d+)">#', third)
    assert (len(first_ids), len(third_ids)) == (50, 30) and not set(first_ids) & set(third_ids)
    assert 'rel="next"' in first and 'rel="next"' not in third


async def test_live_numbers_link_to_their_lists(signed_in: SignIn, world: World) -> None:
    await _seed(world)
    lead = await signed_in("lead")
    resp, panel = await lead.get("/dashboard/live")
    assert resp.status == 200 and "<html" not in panel
    opened = re.search(r'href="(/dashboard/conversations\?live=open)"><span class="stat-number">(\d+)<', panel)
    _, listing = await lead.get(opened.group(1))
    assert re.search(r'id="drill-total">(\d+)<', listing).group(1) == opened.group(2)
    async with world.core.engine.connect() as conn:
        open_now = await conn.scalar(sa.select(sa.func.count()).select_from(models.Conversation.__table__)
                                     .where(models.Conversation.__table__.c.status == "open"))
    assert int(opened.group(2)) == open_now


async def test_csv_is_an_attachment_with_the_page_figures_and_no_formulas(signed_in: SignIn, world: World) -> None:
    await _seed(world)
    channel = models.Channel.__table__
    async with world.core.engine.begin() as conn:
        await conn.execute(channel.update().where(channel.c.account_id == "seed3-1")
                           .values(name=EVIL))
    lead = await signed_in("lead")
    resp, body = await lead.get("/dashboard.csv?range=7d")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="response-times-')
    rows = list(csv.DictReader(io.StringIO(body)))
    groups = {(r["table"], r["group"]): r for r in rows}
    assert ("channel", "'" + EVIL) in groups, "a cell starting with = is prefixed with a quote"
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
    _, page = await lead.get("/dashboard?range=7d")
    _, number = _cell_link(page, "all", "conversations")
    assert groups[("all", "all")]["Conversations"] == number
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page    # in the tables and in the chart


async def test_bad_periods_are_explained(signed_in: SignIn) -> None:
    lead = await signed_in("lead")
    resp, page = await lead.get("/dashboard?range=custom&from=2026-13-01&to=2026-11-02")
    assert resp.status == 400 and "Give both dates as YYYY-MM-DD." in page and "Response times" in page
    resp, page = await lead.get("/dashboard?range=custom&from=2026-11-20&to=2026-11-01")
    assert resp.status == 400 and "The end date is before the start date." in page
    today = utcnow().date()
    resp, body = await lead.get(f"/dashboard.csv?range=custom&from={today - timedelta(days=200)}&to={today}")
    assert resp.status == 400 and "at most 92 days" in body
    resp, body = await lead.get("/dashboard.csv?range=fortnight")
    assert resp.status == 400 and "Choose today, 7 days, 30 days or your own dates." in body


async def test_bad_drill_downs_are_refused_in_words(signed_in: SignIn) -> None:
    lead = await signed_in("lead")
    for query, status, words in (("figure=everything", 400, "unknown figure"), ("figure=conversations&page=0", 400, "page"),
                                 ("live=everything", 400, "Unknown live figure"),
                                 ("table=channel&key=999&figure=conversations", 404, "Nothing was counted")):
        resp, body = await lead.get(f"/dashboard/conversations?{query}")
        assert resp.status == status and words in body, query


def test_a_zero_links_when_clocks_stand_behind_it_and_csv_cells_are_defused() -> None:
    from socialcrm.sla_figures import Summary
    from socialcrm.web.dashboard import _cell, csv_safe

    s = Summary(conversations=3, first_response_median=0.0, first_response_p90=0.0, next_response_median=None,
                resolution_median=None, first_response_attainment_pct=0.0, attainment_pct=0.0, met=0, breached=0,
                conversation_ids=(1, 2, 3), breached_ids=())
    assert _cell(s, "attainment_pct", "attainment", "/x").link == "/x"          # 0 % met: three clocks behind it
    assert _cell(s, "first_response_median", "first_response", "/x").text == "0 s"
    assert _cell(s, "breached", "breached", "/x").link is None                  # nothing behind a zero count
    assert _cell(s, "next_response_median", "next_response", "/x").text == "—"
    assert [csv_safe(v) for v in ("=1+2", "+44", "-3", "@SUM(A1)", "\tx", "Kari", 12, None)] == \
        ["'=1+2", "'+44", "'-3", "'@SUM(A1)", "'\tx", "Kari", "12", ""]


async def test_admins_see_it_too_and_a_chosen_range_is_kept_in_every_link(signed_in: SignIn, world: World) -> None:
    from socialcrm.users import create_user
    from tests.web.conftest import PASSWORD

    await create_user(world.core.engine, "boss", PASSWORD, "admin", "Ada Admin")
    await _seed(world)
    admin = await signed_in("boss")
    today = utcnow().date()
    chosen = f"range=custom&from={today - timedelta(days=3)}&to={today}"
    resp, page = await admin.get(f"/dashboard?{chosen}")
    assert resp.status == 200
    href, _ = _cell_link(page, "channel", "first_response")
    assert href.startswith(f"/dashboard/conversations?{chosen}&table=channel&key=")
    resp, listing = await admin.get(href)
    assert resp.status == 200 and re.search(r"first response \d", listing), "each row says which clock counted"
    resp, _ = await admin.get(f"/dashboard.csv?{chosen}")
    assert resp.headers["Content-Disposition"] == \
        f'attachment; filename="response-times-{today - timedelta(days=3)}-{today}.csv"'
