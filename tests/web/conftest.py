"""Web fixtures: a started Core, the real app on a test server, and signed-in HTTP clients.

Each client is its own cookie jar (its own "browser"), so tests can hold several sessions of
the same user at once. Data is built through `socialcrm.ingest.apply`, as webhooks would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from argon2 import PasswordHasher

from socialcrm import ingest, models, users
from socialcrm.connector import NormalizedEvent
from socialcrm.core import Core
from socialcrm.users import create_user
from socialcrm.web.app import create_app
from tests.support import add_team_and_channel, running_core

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class World:
    core: Core
    care_channel: int          # team "Care"
    other_channel: int         # team "Other"
    agent_id: int              # in team Care
    outsider_id: int           # an agent of team Other
    lead_id: int               # a lead in no team: sees everything

    async def ingest(self, channel_id: int, events: list[NormalizedEvent]) -> ingest.IngestResult:
        channel = await self.core.channels.get(channel_id)
        assert channel is not None
        async with self.core.engine.begin() as conn:
            return await ingest.apply(conn, channel.info, events)


class Browser:
    """One browser: a cookie jar, the last CSRF token seen, helpers to sign in and post forms."""

    def __init__(self, server: TestServer) -> None:
        self.session = aiohttp.ClientSession(base_url=server.make_url("/"),
                                             cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def get(self, path: str, **kwargs: object) -> tuple[aiohttp.ClientResponse, str]:
        resp = await self.session.get(path, **kwargs)
        text = await resp.text()
        if found := CSRF_FIELD.search(text):
            self.csrf = found.group(1)
        return resp, text

    async def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True,
                   **kwargs: object) -> tuple[aiohttp.ClientResponse, str]:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        resp = await self.session.post(path, data=form, allow_redirects=False, **kwargs)
        return resp, await resp.text()

    async def login(self, username: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        await self.get("/login")
        resp, _ = await self.post("/login", {"username": username, "password": password, "next": "/"})
        return resp

    async def close(self) -> None:
        await self.session.close()


FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production-strength argon2 costs ~0.2 s a hash; these tests are about the web, not the hash."""
    monkeypatch.setattr(users, "_hasher", FAST_HASHER)


@pytest.fixture
async def core(database_url: str, tmp_path) -> AsyncIterator[Core]:
    async with running_core(database_url, data_dir=tmp_path) as core:
        yield core


@pytest.fixture
async def world(core: Core) -> World:
    care = await add_team_and_channel(core, "Care", "brand")
    other = await add_team_and_channel(core, "Other", "brand-2", secret="other-secret")
    agent = await create_user(core.engine, "agent", PASSWORD, "agent", "Kari Agent", ["Care"])
    outsider = await create_user(core.engine, "outsider", PASSWORD, "agent", "Olav Other", ["Other"])
    lead = await create_user(core.engine, "lead", PASSWORD, "lead", "Lea Lead")
    return World(core, care, other, agent.id, outsider.id, lead.id)


@pytest.fixture
async def server(core: Core) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(core.settings, core))
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def browser(server: TestServer) -> AsyncIterator[Callable[[], Browser]]:
    """A factory: each call is a fresh browser with its own cookies."""
    opened: list[Browser] = []

    def make() -> Browser:
        opened.append(Browser(server))
        return opened[-1]

    yield make
    for b in opened:
        await b.close()


SignIn = Callable[[str], Awaitable[Browser]]


@pytest.fixture
def signed_in(browser: Callable[[], Browser], world: World) -> SignIn:
    async def sign_in(username: str) -> Browser:
        b = browser()
        resp = await b.login(username)
        assert resp.status == 303, await resp.text()
        await b.get("/")   # picks up the post-login CSRF token
        return b

    return sign_in


async def conversation_of(core: Core, channel_id: int, external_id: str) -> int:
    """The conversation a message landed in."""
    import sqlalchemy as sa

    m = models.Message.__table__
    async with core.engine.connect() as conn:
        return await conn.scalar(sa.select(m.c.conversation_id)
                                 .where(m.c.channel_id == channel_id, m.c.external_id == external_id))
