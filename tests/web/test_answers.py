"""Standard answers and help articles over HTTP: who manages what, the composer's picker, the
short-link redirect and its click count."""

from __future__ import annotations

import re

import sqlalchemy as sa

from socialcrm import answers, helplinks, models
from socialcrm.answers import Draft
from socialcrm.users import load_viewer
from tests.support import ev
from tests.web.conftest import conversation_of

answer_t, article_t, link_t = models.StandardAnswer.__table__, models.HelpArticle.__table__, models.HelpLink.__table__
msg_t = models.Message.__table__
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
FAQ = "https://help.acme.no/returns"


async def _public(world, name: str = "Ingrid Berg") -> int:
    await world.ingest(world.care_channel, [ev("comment", "c-1", "post-1", public=True, text="Where is my refund?",
                                               name=name)])
    return await conversation_of(world.core, world.care_channel, "c-1")


async def _viewer(world, user_id: int):
    return (await load_viewer(world.core.engine, user_id))[0]


async def _count(world, table) -> int:
    async with world.core.engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(table))


async def _team_id(world, name: str) -> int:
    async with world.core.engine.connect() as conn:
        return await conn.scalar(sa.select(models.Team.__table__.c.id).where(models.Team.__table__.c.name == name))


# -- managing ---------------------------------------------------------------------------------

async def test_an_agent_keeps_personal_answers_and_cannot_share_with_the_team(signed_in, world) -> None:
    agent, care = await signed_in("agent"), await _team_id(world, "Care")
    await agent.get("/answers/new")
    resp, _ = await agent.post("/answers/new", {"title": "Greeting", "body": "Hei {customer_first_name}!",
                                                "tags": "hello", "language": "nb", "scope": "personal"})
    assert resp.status == 303
    resp, html = await agent.post("/answers/new", {"title": "Team one", "body": "x", "scope": str(care)})
    assert resp.status == 422 and "Only team leads and admins manage a team" in html
    resp, html = await agent.post("/answers/new", {"title": "", "body": "x", "scope": "personal"})
    assert resp.status == 422 and "Give the answer a title." in html
    assert await _count(world, answer_t) == 1
    _, html = await agent.get("/answers?q=greet")
    assert "Greeting" in html and "only you" in html
    _, html = await (await signed_in("outsider")).get("/answers")
    assert "Greeting" not in html
    lead = await signed_in("lead")
    _, html = await lead.get("/answers")
    assert "Greeting" not in html
    async with world.core.engine.connect() as conn:
        mine = await conn.scalar(sa.select(answer_t.c.id))
    resp, _ = await lead.get(f"/answers/{mine}/edit")
    assert resp.status == 404


async def test_team_answers_are_for_leads_to_change_and_agents_to_use(signed_in, world) -> None:
    care = await _team_id(world, "Care")
    lead = await signed_in("lead")
    await lead.get("/answers/new")
    resp, _ = await lead.post("/answers/new", {"title": "Refunds <b>fast</b>", "body": "Within 14 days.",
                                               "scope": str(care)})
    assert resp.status == 303
    async with world.core.engine.connect() as conn:
        answer_id = await conn.scalar(sa.select(answer_t.c.id))
    agent = await signed_in("agent")
    _, html = await agent.get("/answers")
    assert "Refunds &lt;b&gt;fast&lt;/b&gt;" in html and f"/answers/{answer_id}/edit" not in html
    resp, _ = await agent.get(f"/answers/{answer_id}/edit")
    assert resp.status == 403
    resp, _ = await agent.post(f"/answers/{answer_id}/delete")
    assert resp.status == 403
    resp, _ = await (await signed_in("outsider")).get(f"/answers/{answer_id}/edit")
    assert resp.status == 404
    resp, _ = await lead.post(f"/answers/{answer_id}/delete")
    assert resp.status == 303 and await _count(world, answer_t) == 0


async def test_help_articles_are_managed_by_leads_only(signed_in, world) -> None:
    agent = await signed_in("agent")
    resp, _ = await agent.get("/help-articles")
    assert resp.status == 403
    resp, _ = await agent.post("/help-articles", {"title": "Returns", "url": FAQ})
    assert resp.status == 403
    lead = await signed_in("lead")
    await lead.get("/help-articles")
    resp, html = await lead.post("/help-articles", {"title": "Returns", "url": "javascript:alert(1)"})
    assert resp.status == 422 and "full http:// or https:// URL" in html
    assert await _count(world, article_t) == 0
    resp, _ = await lead.post("/help-articles", {"title": "Returns", "url": FAQ})
    assert resp.status == 303
    _, html = await lead.get("/help-articles")
    assert "Returns" in html and "{help:1}" in html


# -- the picker ---------------------------------------------------------------------------------

async def _answers_with_link(world) -> tuple[int, int]:
    lead = await _viewer(world, world.lead_id)
    article = await helplinks.create_article(world.core.engine, lead.id, "Returns", FAQ)
    care = await _team_id(world, "Care")
    answer = await answers.create(world.core.engine, lead, Draft(
        "Refund status", "Hi {customer_first_name}, {agent_first_name} here. Order {order_number}: see {help:%d}"
        % article, "refund", "en", str(care)))
    other = await _team_id(world, "Other")
    await answers.create(world.core.engine, lead, Draft("Other team refund", "not for Care", scope=str(other)))
    return answer, article


async def test_the_picker_finds_the_teams_answers_and_writes_nothing_while_searching(signed_in, world) -> None:
    conv = await _public(world)
    await _answers_with_link(world)
    agent = await signed_in("agent")
    resp = await agent.session.get(f"/conversations/{conv}/answers", params={"q": "refund"})
    data = await resp.json()
    assert resp.status == 200
    assert [a["title"] for a in data["answers"]] == ["Refund status"]
    assert data["answers"][0]["unknown"] == ["{order_number}"]
    assert data["articles"] == [] and await _count(world, link_t) == 0
    resp = await agent.session.get(f"/conversations/{conv}/answers", params={"q": "returns"})
    assert [a["title"] for a in (await resp.json())["articles"]] == ["Returns"]
    resp = await (await signed_in("outsider")).session.get(f"/conversations/{conv}/answers")
    assert resp.status == 404


async def test_inserting_fills_placeholders_and_puts_in_a_counted_short_link(signed_in, world) -> None:
    conv = await _public(world, name="Ingrid <b>Berg</b>")
    answer, article = await _answers_with_link(world)
    agent = await signed_in("agent")
    await agent.get(f"/conversations/{conv}")
    url = f"/conversations/{conv}/answers/{answer}/insert"
    resp = await agent.session.post(url)
    assert resp.status == 403, "no CSRF token, no insert"
    resp = await agent.session.post(url, headers={"X-CSRF-Token": agent.csrf})
    filled = await resp.json()
    async with world.core.engine.connect() as conn:
        link = (await conn.execute(sa.select(link_t))).one()
    short = helplinks.short_url(world.core.settings.public_url, link.code)
    assert filled["text"] == f"Hi Ingrid, Kari here. Order {{order_number}}: see {short}"
    assert filled["unknown"] == ["{order_number}"] and filled["missing"] == []
    assert (filled["length"], filled["limit"]) == (len(filled["text"]), 500)
    assert (link.article_id, link.conversation_id, link.agent_id, link.message_id) == \
        (article, conv, world.agent_id, None)
    resp = await agent.session.post(f"/conversations/{conv}/help/{article}/insert",
                                    headers={"X-CSRF-Token": agent.csrf})
    assert (await resp.json())["text"] == short, "the same conversation keeps one code per article"


async def test_another_teams_answer_cannot_be_inserted(signed_in, world) -> None:
    conv = await _public(world)
    await _answers_with_link(world)
    async with world.core.engine.connect() as conn:
        other = await conn.scalar(sa.select(answer_t.c.id).where(answer_t.c.title == "Other team refund"))
    agent = await signed_in("agent")
    await agent.get(f"/conversations/{conv}")
    resp = await agent.session.post(f"/conversations/{conv}/answers/{other}/insert",
                                    headers={"X-CSRF-Token": agent.csrf})
    assert resp.status == 404


async def test_the_composer_offers_the_picker_and_counts_what_the_signature_leaves(signed_in, world) -> None:
    conv = await _public(world)
    channel_t = models.Channel.__table__
    async with world.core.engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == world.care_channel)
                           .values(reply_signature="/{agent}"))
    world.core.channels.invalidate()
    _, html = await (await signed_in("agent")).get(f"/conversations/{conv}")
    assert 'id="answers-open"' in html and 'id="answers-picker"' in html and "/static/answers.js" in html
    # "\n/Kari Agent" is 12 characters of the 500.
    assert re.search(r'<textarea id="reply-text"[^>]*data-max-length="488"', html)


async def test_an_over_long_public_reply_is_refused_with_the_reason_and_not_queued(signed_in, world) -> None:
    conv = await _public(world)
    agent = await signed_in("agent")
    await agent.get(f"/conversations/{conv}")
    resp, html = await agent.post(f"/conversations/{conv}/reply", {"text": "Ø" * 501})
    assert resp.status == 422
    assert "Too long for a Simulated platform public reply: 501 of at most 500 characters." in html
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(msg_t).where(msg_t.c.direction == "out")) == 0


# -- the short link -----------------------------------------------------------------------------

async def _sent_link(world, signed_in) -> str:
    conv = await _public(world)
    _, article = await _answers_with_link(world)
    agent = await signed_in("agent")
    await agent.get(f"/conversations/{conv}")
    resp = await agent.session.post(f"/conversations/{conv}/help/{article}/insert",
                                    headers={"X-CSRF-Token": agent.csrf})
    short = (await resp.json())["text"]
    resp, _ = await agent.post(f"/conversations/{conv}/reply", {"text": f"See {short}"})
    assert resp.status == 303
    return short.rsplit("/", 1)[1]


async def _clicks(world, code: str) -> int:
    async with world.core.engine.connect() as conn:
        return await conn.scalar(sa.select(link_t.c.clicks).where(link_t.c.code == code))


async def test_a_customer_click_redirects_and_counts_previews_and_staff_do_not(signed_in, browser, world) -> None:
    code = await _sent_link(world, signed_in)
    customer = browser()
    for agent in ("facebookexternalhit/1.1", "TelegramBot (like TwitterBot)", ""):
        resp = await customer.session.get(f"/l/{code}", allow_redirects=False, headers={"User-Agent": agent})
        assert resp.status == 302 and resp.headers["Location"] == FAQ
    resp = await customer.session.head(f"/l/{code}", allow_redirects=False, headers={"User-Agent": BROWSER_UA})
    assert resp.status == 302
    staff = await signed_in("agent")
    resp = await staff.session.get(f"/l/{code}", allow_redirects=False, headers={"User-Agent": BROWSER_UA})
    assert resp.status == 302
    assert await _clicks(world, code) == 0
    resp = await customer.session.get(f"/l/{code}", allow_redirects=False, headers={"User-Agent": BROWSER_UA})
    assert resp.status == 302 and resp.headers["Location"] == FAQ and "login" not in resp.headers["Location"]
    assert await _clicks(world, code) == 1
    _, html = await (await signed_in("lead")).get("/help-articles")
    assert re.search(r'class="article-clicks">1<', html)


async def test_an_unknown_short_link_is_a_404_page(browser, world) -> None:
    resp = await browser().session.get("/l/Nope2345", allow_redirects=False, headers={"User-Agent": BROWSER_UA})
    assert resp.status == 404 and "This link is unknown" in await resp.text()
