"""Every state-changing request needs the session's CSRF token; webhooks are exempt."""

from __future__ import annotations

import sqlalchemy as sa

from socialcrm import models


async def _online(world) -> bool:
    u = models.User.__table__
    async with world.core.engine.connect() as conn:
        return bool(await conn.scalar(sa.select(u.c.online).where(u.c.id == world.agent_id)))


async def test_post_without_token_is_forbidden(signed_in, world) -> None:
    b = await signed_in("agent")
    resp, text = await b.post("/presence", {"online": "1"}, csrf=False)
    assert resp.status == 403
    assert "CSRF" in text
    assert not await _online(world)


async def test_post_with_a_wrong_token_is_forbidden(signed_in, world) -> None:
    b = await signed_in("agent")
    wrong = "x" * len(b.csrf)
    resp = await b.session.post("/presence", data={"online": "1", "csrf_token": wrong}, allow_redirects=False)
    assert resp.status == 403
    assert not await _online(world)


async def test_post_with_the_token_works(signed_in, world) -> None:
    b = await signed_in("agent")
    resp, _ = await b.post("/presence", {"online": "1"})
    assert resp.status == 303
    assert await _online(world)


async def test_token_in_header_works_as_htmx_sends_it(signed_in, world) -> None:
    b = await signed_in("agent")
    resp = await b.session.post("/presence", data={"online": "1"}, headers={"X-CSRF-Token": b.csrf},
                                allow_redirects=False)
    assert resp.status == 303
    assert await _online(world)


async def test_another_sessions_token_is_refused(signed_in, world) -> None:
    mine, theirs = await signed_in("agent"), await signed_in("lead")
    resp = await mine.session.post("/presence", data={"online": "1", "csrf_token": theirs.csrf},
                                   allow_redirects=False)
    assert resp.status == 403


async def test_login_form_needs_the_token_too(browser, world) -> None:
    b = browser()
    resp, _ = await b.post("/login", {"username": "agent", "password": "correct horse battery"}, csrf=False)
    assert resp.status == 403


async def test_webhooks_are_exempt(browser, world) -> None:
    from tests.support import signed, sim_item

    body, headers = signed([sim_item("dm", "m-1", text="hello")])
    resp = await browser().session.post("/webhooks/simulator", data=body, headers=headers)
    assert resp.status == 200, await resp.text()
