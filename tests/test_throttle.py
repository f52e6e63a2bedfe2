"""Login throttling with a fixed clock: lock after 5 failures, 429 + Retry-After, cool-down, reset."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer

from socialcrm import users
from socialcrm.throttle import State, Throttle, in_words, key, seconds_left
from socialcrm.web.app import create_app
from socialcrm.web.auth import LOGIN_THROTTLE
from tests.support import running_core
from tests.web.conftest import FAST_HASHER, PASSWORD, Browser

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
WRONG = "not the password"
ALERT = re.compile(r'role="alert">([^<]*)<')


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def server(database_url, tmp_path, clock, monkeypatch) -> AsyncIterator[TestServer]:
    monkeypatch.setattr(users, "_hasher", FAST_HASHER)
    async with running_core(database_url, data_dir=tmp_path) as core:
        await users.create_user(core.engine, "ana", PASSWORD, "agent")
        app = create_app(core.settings, core)
        app[LOGIN_THROTTLE] = Throttle(clock=clock)
        server = TestServer(app)
        await server.start_server()
        yield server
        await server.close()


@pytest.fixture
async def browser(server) -> AsyncIterator[Browser]:
    b = Browser(server)
    yield b
    await b.close()


async def _try(b: Browser, username: str, password: str):
    await b.get("/login")
    resp, html = await b.post("/login", {"username": username, "password": password, "next": "/"})
    found = ALERT.search(html)
    return resp, found.group(1).strip() if found else ""


async def _fail(b: Browser, username: str, times: int) -> list[int]:
    return [(await _try(b, username, WRONG))[0].status for _ in range(times)]


# -- the policy, no database --------------------------------------------------------------

def test_five_failures_within_the_window_lock_for_the_cooldown() -> None:
    policy, state = Throttle(), None
    for _ in range(4):
        state = policy.next_state(state, T0)
        assert state.locked_until is None
    state = policy.next_state(state, T0 + timedelta(minutes=14))
    assert state.failures == 5 and state.locked_until == T0 + timedelta(minutes=29)


def test_failures_outside_the_window_start_a_new_count() -> None:
    policy = Throttle()
    state = State(4, T0, None)
    later = policy.next_state(state, T0 + timedelta(minutes=15))
    assert later.failures == 1 and later.window_started_at == T0 + timedelta(minutes=15)
    assert later.locked_until is None


def test_a_failure_after_an_expired_lock_starts_over() -> None:
    policy = Throttle(window=timedelta(hours=1), cooldown=timedelta(minutes=5))
    locked = State(5, T0, T0 + timedelta(minutes=5))
    after = policy.next_state(locked, T0 + timedelta(minutes=6))
    assert after.failures == 1 and after.locked_until is None


def test_helpers() -> None:
    assert seconds_left(T0 + timedelta(seconds=90.2), T0) == 91
    assert seconds_left(T0, T0) == 0 and seconds_left(None, T0) == 0
    assert in_words(900) == "15 minutes" and in_words(61) == "2 minutes" and in_words(1) == "1 second"
    assert key("  Ana ") == key("ana") == "ana"


# -- through the login form ---------------------------------------------------------------

async def test_five_failures_lock_even_the_right_password(browser, clock) -> None:
    assert await _fail(browser, "ana", 4) == [401] * 4
    resp, message = await _try(browser, "ana", WRONG)
    assert resp.status == 429 and resp.headers["Retry-After"] == "900"
    assert message == "Too many failed sign-ins for this username. Try again in 15 minutes."
    clock.advance(minutes=10)
    resp, message = await _try(browser, "ana", PASSWORD)
    assert resp.status == 429 and resp.headers["Retry-After"] == "300"
    assert "Try again in 5 minutes" in message
    resp, _ = await browser.get("/", allow_redirects=False)
    assert resp.status == 302, "a locked sign-in must not start a session"


async def test_another_spelling_of_the_name_is_locked_too(browser) -> None:
    await _fail(browser, "ana", 5)
    resp, _ = await _try(browser, "ANA", PASSWORD)
    assert resp.status == 429


async def test_the_right_password_works_after_the_cooldown_and_resets_the_count(browser, clock) -> None:
    await _fail(browser, "ana", 5)
    clock.advance(minutes=15)
    resp, _ = await _try(browser, "ana", PASSWORD)
    assert resp.status == 303
    browser.session.cookie_jar.clear()   # signed out: a fresh browser
    assert await _fail(browser, "ana", 4) == [401] * 4, "the count started again from zero"
    assert await _fail(browser, "ana", 1) == [429]


async def test_a_successful_sign_in_resets_the_count(browser) -> None:
    await _fail(browser, "ana", 4)
    resp, _ = await _try(browser, "ana", PASSWORD)
    assert resp.status == 303
    browser.session.cookie_jar.clear()   # signed out: a fresh browser
    assert await _fail(browser, "ana", 4) == [401] * 4


async def test_an_unknown_username_gets_the_same_answer(browser) -> None:
    known = [await _try(browser, "ana", WRONG) for _ in range(5)][-1]
    unknown = [await _try(browser, "nobody", WRONG) for _ in range(5)][-1]
    assert known[0].status == unknown[0].status == 429
    assert known[0].headers["Retry-After"] == unknown[0].headers["Retry-After"]
    assert known[1] == unknown[1]
    resp, message = await _try(browser, "nobody", PASSWORD)
    assert resp.status == 429 and message == known[1]
