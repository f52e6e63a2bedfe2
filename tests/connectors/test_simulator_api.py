"""The simulator connector's platform calls through respx: requests as documented, errors mapped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx
from harness import load_fixture

from connectors.simulator import SimulatorConnector
from socialcrm.connector import (
    AuthFailed,
    OutboundReply,
    PermanentError,
    RateLimited,
    Sent,
    TransientError,
)

BASE = "http://sim.test"
TOKEN = "api-token-1"
REPLY = OutboundReply(text="Hei! Pakken kommer i morgen.", public=False, thread_external_id="u7",
                      recipient_external_id="u7", in_reply_to_external_id="m300", idempotency_key="reply-17")


@pytest.fixture
async def connector() -> AsyncIterator[SimulatorConnector]:
    settings = {"account_id": "brand-42", "webhook_secret": "w", "api_token": TOKEN, "api_base_url": BASE + "/"}
    async with httpx.AsyncClient() as http:
        yield SimulatorConnector.from_settings(settings, http)


@pytest.fixture
def platform() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def page(events: list[dict], next_cursor: str | None) -> dict:
    return {"account_id": "brand-42", "events": events, "next": next_cursor}


# -- send -----------------------------------------------------------------------------------

async def test_send_posts_the_documented_body_and_returns_sent(connector, platform) -> None:
    route = platform.post("/api/replies").respond(201, json={"id": "r1", "created_at": 1718000000123})
    sent = await connector.send(REPLY)
    assert sent == Sent("r1", datetime(2024, 6, 10, 6, 13, 20, 123000, tzinfo=UTC))
    request = route.calls.last.request
    assert json.loads(request.content) == {"text": "Hei! Pakken kommer i morgen.", "public": False,
                                           "thread_id": "u7", "in_reply_to": "m300", "recipient_id": "u7"}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == "reply-17"


async def test_send_without_a_key_sends_no_idempotency_header(connector, platform) -> None:
    route = platform.post("/api/replies").respond(200, json={"id": "r2", "created_at": 1})
    await connector.send(OutboundReply(text="hi", public=True, thread_external_id="p1"))
    assert "Idempotency-Key" not in route.calls.last.request.headers


@pytest.mark.parametrize(("status", "headers", "body", "error", "message"), [
    (429, {"Retry-After": "17"}, {"error": "slow down"}, RateLimited, "retry in 17 s"),
    (401, {}, {"error": "token expired"}, AuthFailed, "token expired"),
    (500, {}, {"error": "boom"}, TransientError, "HTTP 500"),
    (503, {}, None, TransientError, "HTTP 503"),
    (400, {}, {"error": "You cannot reply to a deleted comment."}, PermanentError, "You cannot reply to a deleted comment."),
    (404, {}, None, PermanentError, "refused the request (HTTP 404)"),
])
async def test_send_maps_status_codes(connector, platform, status, headers, body, error, message) -> None:
    platform.post("/api/replies").respond(status, headers=headers, **({"json": body} if body else {"text": "<html>"}))
    with pytest.raises(error) as info:
        await connector.send(REPLY)
    assert type(info.value) is error and info.value.code == status
    assert message in str(info.value)


async def test_permanent_error_is_the_platforms_text_in_plain_words(connector, platform) -> None:
    platform.post("/api/replies").respond(400, json={"error": "The customer\nblocked   you."})
    with pytest.raises(PermanentError) as info:
        await connector.send(REPLY)
    assert str(info.value) == "The customer blocked you."


@pytest.mark.parametrize(("retry_after", "expected"), [("17", 17.0), ("2.5", 2.5), (None, 30.0), ("soon", 30.0)])
async def test_rate_limit_waits_retry_after_seconds(connector, platform, retry_after, expected) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    platform.post("/api/replies").respond(429, headers=headers)
    with pytest.raises(RateLimited) as info:
        await connector.send(REPLY)
    assert info.value.retry_after == expected


async def test_rate_limit_accepts_an_http_date(connector, platform) -> None:
    platform.post("/api/replies").respond(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    with pytest.raises(RateLimited) as info:
        await connector.send(REPLY)
    assert info.value.retry_after == 0.0  # a date in the past: retry now, never a negative wait


async def test_unreadable_success_answer_is_transient(connector, platform) -> None:
    platform.post("/api/replies").respond(201, json={"ok": True})
    with pytest.raises(TransientError, match="accepted the reply"):
        await connector.send(REPLY)


TRANSPORT_ERRORS = [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.PoolTimeout, httpx.ConnectError,
                    httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ProxyError]
CALLS = {
    "send": (lambda c: c.send(REPLY), "POST", "/api/replies"),
    "poll": (lambda c: c.poll("5"), "GET", "/api/events"),
    "check": (lambda c: c.check(), "GET", "/api/me"),
    "moderate": (lambda c: c.moderate("hide", "c200"), "POST", "/api/items/c200/hide"),
}


@pytest.mark.parametrize("exc", TRANSPORT_ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("call", sorted(CALLS))
async def test_every_transport_error_becomes_transient(connector, platform, call, exc) -> None:
    invoke, method, path = CALLS[call]
    platform.route(method=method, path=path).mock(side_effect=exc)
    with pytest.raises(TransientError) as info:
        await invoke(connector)
    assert isinstance(info.value.__cause__, exc)


# -- poll -----------------------------------------------------------------------------------

async def test_poll_passes_the_cursor_and_returns_the_next(connector, platform) -> None:
    items = json.loads(load_fixture("simulator", "batch__mixed"))["events"]
    route = platform.get("/api/events").respond(200, json=page(items, "12"))
    events, cursor = await connector.poll("7")
    assert [e.external_id for e in events] == ["p102", "c202", "m302", "p102:reaction:u7:1718000403000"]
    assert {e.account_id for e in events} == {"brand-42"} and cursor == "12"
    request = route.calls.last.request
    assert dict(request.url.params) == {"after": "7", "limit": "100"}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_first_poll_sends_no_cursor(connector, platform) -> None:
    route = platform.get("/api/events").respond(200, json=page([], None))
    assert await connector.poll(None) == ([], None)
    assert "after" not in route.calls.last.request.url.params


@pytest.mark.parametrize("answer", [page([], None), {"account_id": "brand-42", "events": []}])
async def test_empty_page_keeps_the_cursor(connector, platform, answer) -> None:
    platform.get("/api/events").respond(200, json=answer)
    assert await connector.poll("42") == ([], "42")


@pytest.mark.parametrize("answer", [[], {"events": "nope"}, {"events": [{"type": "dm"}]}])
async def test_unreadable_page_is_transient(connector, platform, answer) -> None:
    platform.get("/api/events").respond(200, json=answer)
    with pytest.raises(TransientError):
        await connector.poll("1")


async def test_poll_with_a_rejected_token_is_auth_failed(connector, platform) -> None:
    platform.get("/api/events").respond(401, json={"error": "invalid or missing API token"})
    with pytest.raises(AuthFailed):
        await connector.poll(None)


# -- check and moderate -----------------------------------------------------------------------

async def test_check_passes_with_a_good_token(connector, platform) -> None:
    route = platform.get("/api/me").respond(200, json={"id": "brand-42"})
    await connector.check()
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_check_with_a_rejected_token_is_auth_failed(connector, platform) -> None:
    platform.get("/api/me").respond(401, json={"error": "invalid or missing API token"})
    with pytest.raises(AuthFailed):
        await connector.check()


async def test_moderate_posts_the_action_with_the_id_escaped(connector, platform) -> None:
    route = platform.post("/api/items/a%2Fb%3Fc/delete").respond(200, json={"ok": True})
    await connector.moderate("delete", "a/b?c")
    assert route.called


async def test_moderate_refuses_an_undeclared_action_without_calling(connector, platform) -> None:
    route = platform.post(path__regex=r"/api/items/.*").respond(200, json={"ok": True})
    with pytest.raises(PermanentError):
        await connector.moderate("unhide", "c200")
    assert not route.called
