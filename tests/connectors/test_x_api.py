"""The X connector's replies, DMs and check through respx: exact requests, every error mapped."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx

from connectors.x import XConnector
from socialcrm.connector import (
    AuthFailed,
    OutboundReply,
    PermanentError,
    RateLimited,
    Sent,
    TransientError,
)

#: Built once: loading CA certificates for every client would dominate the run time.
TLS = ssl.create_default_context()
BASE = "https://api.x.test"
BRAND_ID = "1402378515127390211"
BEARER = "app-bearer-AAAA-7f3e"
USER_TOKEN = "user-ctx-token-9c1d"
NOW = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
NOW_EPOCH = 1795593600                  # NOW as epoch seconds, written out by hand
MENTIONS = f"/2/users/{BRAND_ID}/mentions"
PUBLIC = OutboundReply(text="Hei Ingrid! Pakken er på vei 🚚", public=True, thread_external_id="2125140696889480839",
                       recipient_external_id="1283749102938475521", in_reply_to_external_id="2125140696889480839",
                       idempotency_key="reply-1")
DM = OutboundReply(text="Hei Sven! Sporingsnummer 70712345678.", public=False,
                   thread_external_id=f"987654321-{BRAND_ID}", recipient_external_id="987654321")


def settings(**changes: str | None) -> dict[str, str]:
    values = {"user_id": BRAND_ID, "consumer_secret": "c-secret", "bearer_token": BEARER,
              "user_access_token": USER_TOKEN, "api_base_url": BASE + "/"}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture
async def connector() -> AsyncIterator[XConnector]:
    async with httpx.AsyncClient(verify=TLS) as http:
        made = XConnector.from_settings(settings(), http)
        made.clock = lambda: NOW
        yield made


@pytest.fixture
def platform() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


# -- send ---------------------------------------------------------------------------------------

async def test_public_reply_posts_the_documented_body(connector, platform) -> None:
    route = platform.post("/2/tweets").respond(201, json={"data": {
        "id": "2125500000000000001", "text": PUBLIC.text, "edit_history_tweet_ids": ["2125500000000000001"]}})
    assert await connector.send(PUBLIC) == Sent("2125500000000000001", NOW)
    request = route.calls.last.request
    assert json.loads(request.content) == {"text": "Hei Ingrid! Pakken er på vei 🚚",
                                           "reply": {"in_reply_to_tweet_id": "2125140696889480839"}}
    assert request.headers["Authorization"] == f"Bearer {USER_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"


async def test_dm_reply_posts_to_the_participant(connector, platform) -> None:
    route = platform.post("/2/dm_conversations/with/987654321/messages").respond(201, json={"data": {
        "dm_conversation_id": f"987654321-{BRAND_ID}", "dm_event_id": "2125500000000000777"}})
    assert await connector.send(DM) == Sent("2125500000000000777", NOW)
    request = route.calls.last.request
    assert json.loads(request.content) == {"text": "Hei Sven! Sporingsnummer 70712345678."}
    assert request.headers["Authorization"] == f"Bearer {USER_TOKEN}"


async def test_dm_participant_comes_from_the_thread_when_no_recipient_is_given(connector, platform) -> None:
    route = platform.post("/2/dm_conversations/with/987654321/messages").respond(
        201, json={"data": {"dm_event_id": "5", "dm_conversation_id": "x"}})
    await connector.send(OutboundReply(text="hei", public=False, thread_external_id=f"987654321-{BRAND_ID}"))
    assert route.called


@pytest.mark.parametrize(("reply", "words"), [
    (OutboundReply(text="hi", public=True, thread_external_id="1"), "needs the post this reply answers"),
    (OutboundReply(text="hi", public=False, thread_external_id="weird"), "customer's user id"),
    (OutboundReply(text="hi", public=False, thread_external_id="1", mode="private_reply",
                   in_reply_to_external_id="1"), "cannot send a private reply"),
])
async def test_replies_x_cannot_take_fail_before_any_call(connector, platform, reply, words) -> None:
    route = platform.route().respond(201, json={})
    with pytest.raises(PermanentError, match=words):
        await connector.send(reply)
    assert not route.called


async def test_sending_without_a_user_token_is_auth_failed_and_says_why(platform) -> None:
    route = platform.post("/2/tweets").respond(201, json={"data": {"id": "1"}})
    async with httpx.AsyncClient(verify=TLS) as http:
        connector = XConnector.from_settings(settings(user_access_token=None), http)
        with pytest.raises(AuthFailed, match="user_access_token"):
            await connector.send(PUBLIC)
    assert not route.called


def problem(status: int, title: str, detail: str, kind: str = "about:blank", **more: object) -> dict:
    return {"title": title, "detail": detail, "type": kind, "status": status, **more}


ERRORS = [
    (401, {}, problem(401, "Unauthorized", "Unauthorized"), AuthFailed, "rejected the token: Unauthorized"),
    (401, {}, {"errors": [{"code": 89, "message": "Invalid or expired token."}]}, AuthFailed, "Invalid or expired token"),
    (403, {}, problem(403, "Unsupported Authentication", "Authenticating with OAuth 2.0 Application-Only is forbidden "
                      "for this endpoint.", "https://api.x.com/2/problems/unsupported-authentication"),
     AuthFailed, "OAuth 2.0 Application-Only is forbidden"),
    (403, {}, problem(403, "Client Forbidden", "This request must be made using an approved developer account that is "
                      "enrolled in the requested endpoint.", "https://api.x.com/2/problems/client-forbidden",
                      reason="client-not-enrolled", required_enrollment="Appropriate Level of API Access"),
     PermanentError, "X refused: this app's X API access does not include this action (This request must be made"),
    # A refusal without a code (e.g. the 2026 reply restriction): X's own detail is passed through.
    # The wording here is made up for the test; only the pass-through is the point.
    (403, {}, problem(403, "Forbidden", "Replying to this post is not allowed for this account."),
     PermanentError, "X refused: Replying to this post is not allowed for this account."),
    (403, {}, {"errors": [{"code": 187, "message": "Status is a duplicate."}]}, PermanentError,
     "already posted exactly this text"),
    (403, {}, {"errors": [{"code": 385, "message": "You attempted to reply to a Tweet that is deleted or not visible "
                                                   "to you."}]}, PermanentError, "deleted or is not visible"),
    (403, {}, {"errors": [{"code": 349, "message": "You cannot send messages to this user."}]}, PermanentError,
     "does not accept direct messages"),
    (400, {}, problem(400, "Invalid Request", "One or more parameters to your request was invalid.",
                      "https://api.x.com/2/problems/invalid-request",
                      errors=[{"message": "$.text: string too long", "parameters": {}}]),
     PermanentError, "X refused: One or more parameters"),
    (404, {}, None, PermanentError, "not found"),
    (429, {"x-rate-limit-reset": str(NOW_EPOCH + 95)}, problem(429, "Too Many Requests", "Too Many Requests"),
     RateLimited, "retry in 95 s"),
    (429, {}, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}, RateLimited, "retry in 60 s"),
    (429, {"x-rate-limit-reset": str(NOW_EPOCH + 86400)}, problem(
        429, "UsageCapExceeded", "Usage cap exceeded: Monthly product cap", "https://api.x.com/2/problems/usage-capped"),
     RateLimited, "Monthly product cap"),
    (500, {}, problem(500, "Internal Server Error", "Internal error"), TransientError, "HTTP 500"),
    (503, {}, None, TransientError, "HTTP 503"),
]


@pytest.mark.parametrize(("status", "headers", "body", "error", "words"), ERRORS,
                         ids=[f"{e[0]}-{e[3].__name__}-{i}" for i, e in enumerate(ERRORS)])
async def test_send_maps_errors_by_status_problem_type_and_code(connector, platform, status, headers, body,
                                                                error, words) -> None:
    platform.post("/2/tweets").respond(status, headers=headers, **({"json": body} if body else {"text": "<html>"}))
    with pytest.raises(error) as info:
        await connector.send(PUBLIC)
    assert type(info.value) is error and words in str(info.value)
    assert USER_TOKEN not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("reset", "expected"), [(str(NOW_EPOCH + 3), 3.0), (str(NOW_EPOCH - 50), 0.0), ("soon", 60.0)])
async def test_rate_limit_wait_is_reset_minus_now(connector, platform, reset, expected) -> None:
    platform.post("/2/dm_conversations/with/987654321/messages").respond(429, headers={"x-rate-limit-reset": reset})
    with pytest.raises(RateLimited) as info:
        await connector.send(DM)
    assert info.value.retry_after == expected


async def test_5xx_then_success(connector, platform) -> None:
    route = platform.post("/2/tweets").mock(side_effect=[
        httpx.Response(503, json=problem(503, "Service Unavailable", "Service Unavailable")),
        httpx.Response(201, json={"data": {"id": "2125500000000000002", "text": PUBLIC.text}})])
    with pytest.raises(TransientError):
        await connector.send(PUBLIC)
    assert await connector.send(PUBLIC) == Sent("2125500000000000002", NOW) and route.call_count == 2


@pytest.mark.parametrize(("answer", "error"), [
    ({"errors": [{"title": "Forbidden", "detail": "You are not permitted to perform this action."}]}, PermanentError),
    ({"ok": True}, TransientError),
])
async def test_a_2xx_without_the_new_id(connector, platform, answer, error) -> None:
    platform.post("/2/tweets").respond(200, json=answer)
    with pytest.raises(error):
        await connector.send(PUBLIC)


CALLS = {
    "send": (lambda c: c.send(PUBLIC), "POST", "/2/tweets"),
    "dm": (lambda c: c.send(DM), "POST", "/2/dm_conversations/with/987654321/messages"),
    "poll": (lambda c: c.poll("5"), "GET", MENTIONS),
    "check": (lambda c: c.check(), "GET", "/2/users/me"),
}


@pytest.mark.parametrize("exc", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError],
                         ids=lambda e: e.__name__)
@pytest.mark.parametrize("call", sorted(CALLS))
async def test_timeouts_and_transport_errors_are_transient(connector, platform, call, exc) -> None:
    invoke, method, path = CALLS[call]
    platform.route(method=method, path=path).mock(side_effect=exc)
    with pytest.raises(TransientError) as info:
        await invoke(connector)
    assert isinstance(info.value.__cause__, exc)


# -- check ----------------------------------------------------------------------------------------

async def test_check_reads_users_me_with_the_user_token(connector, platform) -> None:
    route = platform.get("/2/users/me").respond(200, json={"data": {"id": BRAND_ID, "name": "Fjordkaffe",
                                                                    "username": "fjordkaffe"}})
    await connector.check()
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {USER_TOKEN}"


async def test_check_refuses_a_user_token_of_another_account(connector, platform) -> None:
    platform.get("/2/users/me").respond(200, json={"data": {"id": "987654321", "username": "svenne"}})
    with pytest.raises(AuthFailed, match="belongs to X user 987654321"):
        await connector.check()


async def test_check_with_only_the_bearer_reads_the_brand_account(platform) -> None:
    route = platform.get(f"/2/users/{BRAND_ID}").respond(200, json={"data": {"id": BRAND_ID}})
    async with httpx.AsyncClient(verify=TLS) as http:
        await XConnector.from_settings(settings(user_access_token=None), http).check()
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {BEARER}"


async def test_check_with_a_revoked_token_is_auth_failed(connector, platform) -> None:
    platform.get("/2/users/me").respond(401, json=problem(401, "Unauthorized", "Unauthorized"))
    with pytest.raises(AuthFailed):
        await connector.check()


def test_tokens_never_show_in_reprs() -> None:
    made = XConnector.from_settings(settings(), httpx.AsyncClient(verify=TLS))
    text = repr(made.settings) + str(made.settings.model_dump())
    assert BEARER not in text and USER_TOKEN not in text and "c-secret" not in text
