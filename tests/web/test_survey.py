"""The customer's survey page (no login) and the leads' satisfaction page."""

from __future__ import annotations

import re

import sqlalchemy as sa

from socialcrm import csat, models
from socialcrm.conversations import resolve
from tests.support import ev
from tests.web.conftest import conversation_of

survey_t, msg_t, channel_t = models.CsatSurvey.__table__, models.Message.__table__, models.Channel.__table__
TOKEN_IN_TEXT = re.compile(r"/s/([A-Za-z0-9_-]+)")


async def _resolved_with_survey(world, external_id: str = "m-1", author: str = "cust-1") -> tuple[int, str]:
    async with world.core.engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == world.care_channel).values(csat_enabled=True))
    world.core.channels.invalidate()
    await world.ingest(world.care_channel, [ev("message", external_id, author, author=author, text="Hjelp!",
                                               at=models.utcnow())])
    conv = await conversation_of(world.core, world.care_channel, external_id)
    await resolve(world.core, conv, world.agent_id)
    async with world.core.engine.connect() as conn:
        text = await conn.scalar(sa.select(msg_t.c.text).where(msg_t.c.conversation_id == conv,
                                                               msg_t.c.kind == "survey"))
    return conv, TOKEN_IN_TEXT.search(text).group(1)


async def test_a_customer_rates_with_one_tap_then_adds_details_without_signing_in(browser, world) -> None:
    _, token = await _resolved_with_survey(world)
    customer = browser()
    resp, html = await customer.get(f"/s/{token}")
    assert resp.status == 200 and 'name="rating" value="5"' in html and "Sign in" not in html
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    resp, _ = await customer.post(f"/s/{token}", {"rating": "5"})
    assert resp.status == 303
    resp, html = await customer.get(f"/s/{token}")
    assert 'action="/s/%s/details"' % token in html
    resp, _ = await customer.post(f"/s/{token}/details", {"first_contact": "yes", "self_help": "no",
                                                         "comment": "<b>Rask hjelp</b>"})
    assert resp.status == 303
    resp, html = await customer.get(f"/s/{token}")
    assert "We have your answers" in html
    async with world.core.engine.connect() as conn:
        row = (await conn.execute(sa.select(survey_t))).one()
    assert (row.rating, row.first_contact, row.self_help, row.comment) == (5, True, False, "<b>Rask hjelp</b>")


async def test_a_second_answer_an_unknown_link_and_a_bad_rating_get_their_own_pages(browser, world) -> None:
    _, token = await _resolved_with_survey(world)
    customer = browser()
    await customer.get(f"/s/{token}")
    resp, html = await customer.post(f"/s/{token}", {"rating": "9"})
    assert resp.status == 400 and "from 1 to 5" in html
    await customer.post(f"/s/{token}", {"rating": "2"})
    resp, html = await customer.post(f"/s/{token}", {"rating": "5"})
    assert resp.status == 409 and "already have your answer" in html
    resp, html = await customer.get("/s/made-up-token")
    assert resp.status == 404 and "not valid" in html
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(survey_t.c.rating)) == 2


async def test_an_answer_without_the_form_token_is_refused(browser, world) -> None:
    _, token = await _resolved_with_survey(world)
    resp, _ = await browser().post(f"/s/{token}", {"rating": "1"}, csrf=False)
    assert resp.status == 403
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(survey_t.c.rating)) is None


async def test_leads_see_csat_per_agent_and_follow_a_number_to_the_comments(signed_in, world) -> None:
    conv, token = await _resolved_with_survey(world)
    await csat.answer(world.core.engine, token, 2)
    await csat.add_details(world.core.engine, token, False, None, "Måtte ringe <til slutt>")
    lead = await signed_in("lead")
    resp, html = await lead.get("/dashboard/satisfaction?range=7d&by=agent")
    assert resp.status == 200 and "Kari Agent" in html
    link = re.search(r'href="(/dashboard/satisfaction/conversations\?[^"]*what=unsatisfied[^"]*)"', html)
    assert link is not None
    resp, html = await lead.get(link.group(1).replace("&amp;", "&"))
    assert resp.status == 200 and f'href="/conversations/{conv}"' in html
    assert "Måtte ringe &lt;til slutt&gt;" in html and "<til slutt>" not in html


async def test_agents_may_not_see_the_satisfaction_page_and_bad_periods_are_explained(signed_in, world) -> None:
    agent = await signed_in("agent")
    resp, _ = await agent.get("/dashboard/satisfaction")
    assert resp.status == 403
    lead = await signed_in("lead")
    resp, html = await lead.get("/dashboard/satisfaction?range=custom&from=2026-11-30&to=2026-11-01")
    assert resp.status == 400 and "before the start date" in html
    resp, _ = await lead.get("/dashboard/satisfaction/conversations?range=7d&by=agent&key=all&what=everything")
    assert resp.status == 400
