"""The fake platform program: its API, its webhooks, and that the connector accepts what it sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from harness import run_webhook, sign_simulator

from connectors.simulator import SimulatorConnector
from connectors.simulator.content import TEXTS
from connectors.simulator.platform import SIM, PlatformConfig, create_platform_app, webhook_body
from connectors.simulator.simulation import Simulation
from socialcrm.connector import OutboundReply, PermanentError

SECRET, TOKEN, ACCOUNT = "plat-secret", "plat-token", "brand"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def config(**overrides: object) -> PlatformConfig:
    values = {"secret": SECRET, "token": TOKEN, "account_id": ACCOUNT, "interval": 0, "seed": 7,
              "followup_chance": 0.0, "followup_delay": (0.0, 0.0), "backoff": 0.01}
    return PlatformConfig(**{**values, **overrides})


async def started(app: web.Application) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def platform() -> AsyncIterator[TestClient]:
    client = await started(create_platform_app(config()))
    yield client
    await client.close()


def connector() -> SimulatorConnector:
    settings = {"account_id": ACCOUNT, "webhook_secret": SECRET, "api_token": TOKEN}
    return SimulatorConnector.from_settings(settings, httpx.AsyncClient())


class Receiver:
    """A stand-in for socialcrm's webhook endpoint that records what arrives."""

    def __init__(self, failures: int = 0) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        self.failures = failures
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.deliveries.append((await request.read(), dict(request.headers)))
        self.arrived.set()
        if len(self.deliveries) <= self.failures:
            return web.Response(status=500)
        return web.Response(text="ok")

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.deliveries) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def receiving(receiver: Receiver) -> TestServer:
    app = web.Application()
    app.router.add_post("/webhooks/simulator", receiver.handle)
    server = TestServer(app)
    await server.start_server()
    return server


# -- API --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [("GET", "/api/events"), ("POST", "/api/replies"),
                                              ("GET", "/api/replies"), ("GET", "/api/me")])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_api_requires_the_token(platform: TestClient, method: str, path: str, headers: dict) -> None:
    response = await platform.request(method, path, headers=headers, json={})
    assert response.status == 401 and "error" in await response.json()


async def test_replies_are_stored_and_idempotent_by_key(platform: TestClient) -> None:
    body = {"text": "Takk!", "public": False, "thread_id": "u1", "in_reply_to": None, "recipient_id": "u1"}
    first = await platform.post("/api/replies", json=body, headers={**AUTH, "Idempotency-Key": "k1"})
    again = await platform.post("/api/replies", json=body, headers={**AUTH, "Idempotency-Key": "k1"})
    other = await platform.post("/api/replies", json=body, headers={**AUTH, "Idempotency-Key": "k2"})
    assert (first.status, again.status, other.status) == (201, 200, 201)
    one, two, three = await first.json(), await again.json(), await other.json()
    assert one == two and one["id"] != three["id"] and isinstance(one["created_at"], int)
    stored = await (await platform.get("/api/replies", headers=AUTH)).json()
    assert [(r["id"], r["text"], r["thread_id"]) for r in stored] == [(one["id"], "Takk!", "u1"), (three["id"], "Takk!", "u1")]


@pytest.mark.parametrize(("body", "words"), [
    ({"text": "This will fail-permanent", "public": True, "thread_id": "p1"}, "simulated permanent failure"),
    ({"text": "x" * 501, "public": True, "thread_id": "p1"}, "longer than 500"),
    ({"text": "", "public": True, "thread_id": "p1"}, "text is missing"),
    ({"text": "hi", "thread_id": "p1"}, "public and thread_id are required"),
])
async def test_refused_replies_answer_400_with_words(platform: TestClient, body: dict, words: str) -> None:
    response = await platform.post("/api/replies", json=body, headers=AUTH)
    assert response.status == 400 and words in (await response.json())["error"]
    assert await (await platform.get("/api/replies", headers=AUTH)).json() == []


async def test_connector_sends_through_the_real_platform(platform: TestClient) -> None:
    """The connector and the program agree on the reply API, not just each with its own tests."""
    settings = {"account_id": ACCOUNT, "webhook_secret": SECRET, "api_token": TOKEN,
                "api_base_url": str(platform.make_url("/"))}
    async with httpx.AsyncClient() as http:
        sim = SimulatorConnector.from_settings(settings, http)
        await sim.check()
        sent = await sim.send(OutboundReply("Hi!", True, "p1", idempotency_key="a"))
        assert (await sim.send(OutboundReply("Hi!", True, "p1", idempotency_key="a"))).external_id == sent.external_id
        with pytest.raises(PermanentError, match="simulated permanent failure"):
            await sim.send(OutboundReply("fail-permanent", True, "p1"))
        await sim.moderate("hide", sent.external_id)
    assert platform.app[SIM].moderation == [{"id": sent.external_id, "action": "hide"}]


async def test_poll_pages_through_everything_generated(platform: TestClient) -> None:
    sim = platform.app[SIM]
    for _ in range(5):
        sim.next_event()
    first = await (await platform.get("/api/events", params={"limit": "3"}, headers=AUTH)).json()
    rest = await (await platform.get("/api/events", params={"after": first["next"]}, headers=AUTH)).json()
    end = await (await platform.get("/api/events", params={"after": rest["next"]}, headers=AUTH)).json()
    assert [e["id"] for e in first["events"] + rest["events"]] == [e["id"] for e in sim.events]
    assert (first["next"], rest["next"], end["events"], end["next"]) == ("3", "5", [], None)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/events?after=x", 400), ("GET", "/api/events?after=-1", 400),
    ("POST", "/api/items/nope/hide", 404), ("POST", "/api/items/nope/pin", 400),
])
async def test_bad_api_requests_are_refused_with_words(platform: TestClient, method: str, path: str, status: int) -> None:
    response = await platform.request(method, path, headers=AUTH)
    assert response.status == status and (await response.json())["error"]


async def test_follow_up_stays_in_the_replys_thread() -> None:
    client = await started(create_platform_app(config(followup_chance=1.0)))
    try:
        dm = {"text": "Hei", "public": False, "thread_id": "u5", "recipient_id": "u5"}
        comment = {"text": "Hi", "public": True, "thread_id": "p9", "in_reply_to": "c3", "recipient_id": "u6"}
        for body in (dm, comment):
            assert (await client.post("/api/replies", json=body, headers=AUTH)).status == 201
        sim = client.app[SIM]
        async with asyncio.timeout(5):
            while len(sim.events) < 2:
                await asyncio.sleep(0.01)
        by_type = {e["type"]: e for e in sim.events}
        assert (by_type["dm"]["thread_id"], by_type["dm"]["author"]["id"]) == ("u5", "u5")
        reply_id = sim.replies[1]["id"]
        assert (by_type["comment"]["thread_id"], by_type["comment"]["parent_id"]) == ("p9", reply_id)
        assert by_type["comment"]["author"]["id"] == "u6"
    finally:
        await client.close()


# -- webhooks ---------------------------------------------------------------------------------

async def test_generated_events_are_signed_and_parse() -> None:
    receiver = Receiver()
    server = await receiving(receiver)
    url = str(server.make_url("/webhooks/simulator"))
    client = await started(create_platform_app(config(webhook_url=url, interval=0.01, count=12)))
    try:
        await receiver.wait_for(12)
    finally:
        await client.close()
        await server.close()
    sim = connector()
    for body, headers in receiver.deliveries:
        events = run_webhook(sim, body, headers)  # verify + parse; raises on a bad signature
        assert len(events) == 1 and events[0].account_id == ACCOUNT


async def test_failed_delivery_is_retried_with_the_same_body() -> None:
    receiver = Receiver(failures=2)
    server = await receiving(receiver)
    client = await started(create_platform_app(config(webhook_url=str(server.make_url("/webhooks/simulator")),
                                                      interval=0.01, count=1)))
    try:
        await receiver.wait_for(3)
    finally:
        await client.close()
        await server.close()
    assert len({body for body, _ in receiver.deliveries}) == 1 and len(receiver.deliveries) == 3


def test_long_generated_runs_parse_and_cover_the_mix() -> None:
    """Hundreds of events from a fixed seed: every one parses, and the mix is what the README says."""
    sim, parser = Simulation(ACCOUNT, seed=3), connector()
    kinds = []
    for _ in range(400):
        body = webhook_body(ACCOUNT, [sim.next_event()])
        kinds += [e.kind for e in run_webhook(parser, body, sign_simulator(SECRET, body))]
    assert set(kinds) == {"mention", "comment", "message", "edit"}
    assert any(e.get("parent_id", "").split("-")[-1].startswith("c") for e in sim.events if e["type"] == "comment")
    assert any(len(e["text"]) > 300 for e in sim.events) and any("<script>" in e["text"] for e in sim.events)


def test_content_has_the_promised_variety() -> None:
    assert len(TEXTS) >= 30
    assert sum(len(t) > 300 for t in TEXTS) >= 3
    assert sum("<script>" in t or "onerror" in t for t in TEXTS) >= 2


def test_a_seed_repeats_a_run_and_no_seed_does_not() -> None:
    def run(seed: int | None) -> list[tuple[str, str, str]]:
        sim = Simulation(ACCOUNT, seed=seed)
        return [(e["id"], e["type"], e["text"]) for e in (sim.next_event() for _ in range(20))]
    assert run(5) == run(5)
    assert run(None)[0][0] != run(None)[0][0]  # fresh ids: a restarted platform never reuses one
