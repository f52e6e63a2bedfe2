"""Sign-in, sessions and their revocation."""

from __future__ import annotations

import pytest

from socialcrm import users
from tests.web.conftest import PASSWORD


async def test_every_page_requires_login(browser, world) -> None:
    b = browser()
    for path in ("/", "/inbox/list", "/conversations/1", "/account/password"):
        resp, _ = await b.get(path, allow_redirects=False)
        assert resp.status == 302, path
        assert resp.headers["Location"].startswith("/login?next="), path


async def test_public_paths_need_no_login(browser, world) -> None:
    b = browser()
    for path in ("/login", "/healthz", "/static/app.css", "/static/vendor/htmx.min.js"):
        resp, _ = await b.get(path, allow_redirects=False)
        assert resp.status == 200, path


async def test_wrong_password_is_refused(browser, world) -> None:
    b = browser()
    resp = await b.login("agent", "not the password")
    assert resp.status == 401
    assert "Wrong username or password." in await resp.text()
    resp, _ = await b.get("/", allow_redirects=False)
    assert resp.status == 302


async def test_unknown_user_gets_the_same_answer(browser, world) -> None:
    resp = await browser().login("nobody", "whatever-123")
    assert resp.status == 401
    assert "Wrong username or password." in await resp.text()


async def test_login_then_inbox_then_logout(browser, world) -> None:
    b = browser()
    resp = await b.login("agent")
    assert resp.status == 303 and resp.headers["Location"] == "/"
    resp, html = await b.get("/")
    assert resp.status == 200 and "Kari Agent" in html
    resp, _ = await b.post("/logout")
    assert resp.status == 303
    resp, _ = await b.get("/", allow_redirects=False)
    assert resp.status == 302


async def test_session_cookie_flags(browser, world) -> None:
    b = browser()
    await b.get("/login")
    resp, _ = await b.post("/login", {"username": "agent", "password": PASSWORD, "next": "/"})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert world.core.settings.secure_cookies or "Secure" not in cookie


async def test_next_is_followed_but_never_off_site(browser, world) -> None:
    b = browser()
    await b.get("/login")
    resp, _ = await b.post("/login", {"username": "agent", "password": PASSWORD, "next": "/?tab=public"})
    assert resp.headers["Location"] == "/?tab=public"
    b2 = browser()
    await b2.get("/login")
    resp, _ = await b2.post("/login", {"username": "agent", "password": PASSWORD, "next": "//evil.example/"})
    assert resp.headers["Location"] == "/"


async def test_password_change_revokes_other_sessions(signed_in, world) -> None:
    laptop, phone = await signed_in("agent"), await signed_in("agent")
    await laptop.get("/account/password")
    resp, html = await laptop.post("/account/password", {
        "current_password": PASSWORD, "new_password": "a brand new secret", "repeat_password": "a brand new secret"})
    assert resp.status == 200 and "signed out everywhere else" in html
    resp, _ = await laptop.get("/", allow_redirects=False)
    assert resp.status == 200, "the session that changed the password stays signed in"
    resp, _ = await phone.get("/", allow_redirects=False)
    assert resp.status == 302, "every other session is signed out"
    assert await users.authenticate(world.core.engine, "agent", PASSWORD) is None
    assert await users.authenticate(world.core.engine, "agent", "a brand new secret") is not None


async def test_password_change_needs_the_current_password(signed_in, world) -> None:
    b = await signed_in("agent")
    await b.get("/account/password")
    resp, html = await b.post("/account/password", {
        "current_password": "wrong-wrong", "new_password": "another secret!", "repeat_password": "another secret!"})
    assert resp.status == 422 and "current password is not correct" in html
    assert await users.authenticate(world.core.engine, "agent", PASSWORD) is not None


async def test_disabled_user_is_signed_out_and_cannot_sign_in(signed_in, browser, world) -> None:
    b = await signed_in("agent")
    await users.set_active(world.core.engine, world.agent_id, False)
    resp, _ = await b.get("/", allow_redirects=False)
    assert resp.status == 302
    resp = await browser().login("agent")
    assert resp.status == 401


async def test_require_role(world) -> None:
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from socialcrm.web.auth import require_role
    from socialcrm.web.keys import VIEWER

    found = await users.load_viewer(world.core.engine, world.agent_id)
    assert found is not None
    request = make_mocked_request("GET", "/admin")
    request[VIEWER] = found[0]
    assert require_role(request, "agent").id == world.agent_id
    with pytest.raises(web.HTTPForbidden):
        require_role(request, "lead", "admin")


async def test_htmx_fragment_after_the_session_ended_redirects_the_whole_page(browser, world) -> None:
    resp, text = await browser().get("/inbox/list", headers={"HX-Request": "true"}, allow_redirects=False)
    assert resp.status == 401
    assert resp.headers["HX-Redirect"] == "/login"
    assert "<html" not in text
