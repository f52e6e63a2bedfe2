"""Mastodon replies through respx: the exact request, the customer's visibility, every error mapped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from harness import load_fixture

from connectors.mastodon import MastodonConnector
from socialcrm.connector import (
    AuthFailed,
    OutboundReply,
    PermanentError,
    RateLimited,
    Sent,
    TransientError,
)

BASE = "https://social.example"
TOKEN = "mastodon-token-4f1c9e"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
SVEN_STATUS = json.loads(load_fixture("mastodon", "notifications__mention_direct"))[0]["status"]
JAMES_REPLY, INGRID_POST = (n["status"] for n in json.loads(load_fixture("mastodon", "notifications__mention_public")))
JAMES_PRIVATE = json.loads(load_fixture("mastodon", "notifications__mention_private"))[0]["status"]

DM_REPLY = OutboundReply(text="Hei Sven! Pakken ble sendt i går, sporing kommer på e-post.", public=False,
                         thread_external_id="113500000000000500", recipient_external_id="108112233445566778",
                         in_reply_to_external_id="113500000000000500", idempotency_key="socialcrm-outbox-17")


def reply_to(status: dict, text: str = "Takk, vi ser på det!", **fields: object) -> OutboundReply:
    public = status["visibility"] in ("public", "unlisted")
    return OutboundReply(text=text, public=public, thread_external_id=status["id"],
                         recipient_external_id=status["account"]["id"], in_reply_to_external_id=status["id"],
                         idempotency_key=fields.pop("idempotency_key", "socialcrm-outbox-18"), **fields)


@pytest.fixture
async def connector() -> AsyncIterator[MastodonConnector]:
    async with httpx.AsyncClient() as http:
        built = MastodonConnector.from_settings({"api_base_url": BASE, "access_token": TOKEN,
                                                 "account_id": "109876543210987654"}, http)
        built.clock = lambda: NOW
        yield built


@pytest.fixture
def platform() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/api/v2/instance").respond(200, content=load_fixture("mastodon", "instance__v2"))
        for status in (SVEN_STATUS, JAMES_REPLY, INGRID_POST, JAMES_PRIVATE):
            router.get(f"/api/v1/statuses/{status['id']}").respond(200, json=status)
        yield router


def created() -> httpx.Response:
    return httpx.Response(200, content=load_fixture("mastodon", "status__reply_created"))


def form(request: httpx.Request) -> dict[str, str]:
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


# -- the request ---------------------------------------------------------------------------------

async def test_direct_reply_mentions_the_customer_and_stays_direct(connector, platform) -> None:
    route = platform.post("/api/v1/statuses").mock(side_effect=[created()])
    sent = await connector.send(DM_REPLY)
    assert sent == Sent("113500000000000800", datetime(2026, 11, 25, 12, 0, 1, 337000, tzinfo=UTC))
    request = route.calls.last.request
    assert form(request) == {
        "status": "@svenne@mastodon.example Hei Sven! Pakken ble sendt i går, sporing kommer på e-post.",
        "visibility": "direct", "in_reply_to_id": "113500000000000500"}
    assert request.headers["Idempotency-Key"] == "socialcrm-outbox-17"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(("text", "sent_text"), [
    ("@svenne@mastodon.example takk!", "@svenne@mastodon.example takk!"),
    ("Takk, @SVENNE@Mastodon.example!", "Takk, @SVENNE@Mastodon.example!"),
    ("@svenne takk!", "@svenne@mastodon.example @svenne takk!"),     # @svenne would be a user of our instance
    ("@svenne@mastodon.example.org takk", "@svenne@mastodon.example @svenne@mastodon.example.org takk"),
])
async def test_the_mention_is_added_only_when_the_full_acct_is_missing(connector, platform, text, sent_text) -> None:
    route = platform.post("/api/v1/statuses").mock(side_effect=[created()])
    await connector.send(reply_to(SVEN_STATUS, text))
    assert form(route.calls.last.request)["status"] == sent_text


@pytest.mark.parametrize(("status", "visibility", "prefix"), [
    (INGRID_POST, "unlisted", "@ingrid@fosstodon.example "),    # public: quiet public, in the thread
    (JAMES_REPLY, "unlisted", "@jwalker "),                      # unlisted; jwalker is on our instance
    (JAMES_PRIVATE, "private", "@jwalker "),                     # followers-only stays followers-only
    (SVEN_STATUS, "direct", "@svenne@mastodon.example "),
])
async def test_the_reply_is_never_more_visible_than_the_customers_post(connector, platform, status, visibility,
                                                                       prefix) -> None:
    route = platform.post("/api/v1/statuses").mock(side_effect=[created()])
    await connector.send(reply_to(status))
    assert form(route.calls.last.request) == {"status": prefix + "Takk, vi ser på det!", "visibility": visibility,
                                              "in_reply_to_id": status["id"]}


async def test_a_retry_sends_the_same_idempotency_key_and_body(connector, platform) -> None:
    route = platform.post("/api/v1/statuses").mock(side_effect=[httpx.Response(502, text="Bad Gateway"), created()])
    with pytest.raises(TransientError):
        await connector.send(DM_REPLY)
    assert await connector.send(DM_REPLY) == Sent("113500000000000800",
                                                  datetime(2026, 11, 25, 12, 0, 1, 337000, tzinfo=UTC))
    first, second = (call.request for call in route.calls)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == "socialcrm-outbox-17"
    assert first.content == second.content


async def test_without_a_key_no_idempotency_header_is_sent(connector, platform) -> None:
    route = platform.post("/api/v1/statuses").mock(side_effect=[created()])
    await connector.send(reply_to(INGRID_POST, idempotency_key=None))
    assert "Idempotency-Key" not in route.calls.last.request.headers


async def test_a_private_reply_without_the_post_it_answers_is_refused_without_a_call(connector, platform) -> None:
    route = platform.post("/api/v1/statuses").mock(side_effect=[created()])
    with pytest.raises(PermanentError, match="must answer one of the customer's posts"):
        await connector.send(OutboundReply(text="hei", public=False, thread_external_id="x"))
    assert not route.called


# -- the instance's own limit ------------------------------------------------------------------

async def test_instance_limit_is_read_once_from_the_v2_instance(connector, platform) -> None:
    assert await connector.instance_limit() == 1000
    assert await connector.instance_limit() == 1000
    assert platform.routes[0].call_count == 1


@pytest.mark.parametrize("answer", [httpx.Response(404, json={"error": "Record not found"}),
                                    httpx.Response(200, json={"domain": "old.example", "configuration": {}}),
                                    httpx.Response(200, json={"configuration": {"statuses": [500]}})])
async def test_instance_limit_defaults_to_500(connector, answer) -> None:
    with respx.mock(base_url=BASE) as router:
        router.get("/api/v2/instance").mock(side_effect=[answer])
        assert await connector.instance_limit() == 500


async def test_the_mention_counts_against_the_instance_limit(connector, platform) -> None:
    route = platform.post("/api/v1/statuses").mock(side_effect=[created()])
    # "@svenne " counts 8 (the domain is not counted): 992 + 8 = 1000 fits, 993 + 8 does not.
    await connector.send(reply_to(SVEN_STATUS, "x" * 992))
    with pytest.raises(PermanentError, match="1001 of at most 1000 characters, counting the @mention"):
        await connector.send(reply_to(SVEN_STATUS, "x" * 993))
    assert route.call_count == 1


async def test_the_instance_url_length_is_used_once_known(connector) -> None:
    instance = json.loads(load_fixture("mastodon", "instance__v2"))
    instance["configuration"]["statuses"]["characters_reserved_per_url"] = 30
    text = "see https://nordlys.example/orders/48213"
    assert connector.text_length(text) == 4 + 23
    with respx.mock(base_url=BASE) as router:
        router.get("/api/v2/instance").respond(200, json=instance)
        await connector.instance_limit()
    assert connector.text_length(text) == 4 + 30


# -- errors --------------------------------------------------------------------------------------

async def test_rate_limit_waits_until_x_ratelimit_reset(connector, platform) -> None:
    headers = json.loads(load_fixture("mastodon", "error__rate_limited.headers"))
    platform.post("/api/v1/statuses").respond(429, headers=headers, content=load_fixture("mastodon", "error__rate_limited"))
    with pytest.raises(RateLimited) as info:
        await connector.send(DM_REPLY)
    assert info.value.retry_after == 300.0 and info.value.code == 429


@pytest.mark.parametrize(("reset", "expected"), [
    ("2026-11-25T12:00:42.500Z", 42.5),
    ("2026-11-25T13:00:00+01:00", 0.0),          # the same instant as "now", in another zone
    ("2026-11-25T11:59:00.000Z", 0.0),           # already past: retry now, never a negative wait
    (None, 300.0), ("soon", 300.0), ("2026-11-25T12:01:00", 300.0),   # unreadable or no zone: the window
])
async def test_rate_limit_reset_variants(connector, platform, reset, expected) -> None:
    platform.post("/api/v1/statuses").respond(429, headers={"X-RateLimit-Reset": reset} if reset else {},
                                              json={"error": "Too many requests"})
    with pytest.raises(RateLimited) as info:
        await connector.send(DM_REPLY)
    assert info.value.retry_after == expected


@pytest.mark.parametrize(("status", "body", "error", "message"), [
    (401, load_fixture("mastodon", "error__unauthorized"), AuthFailed, "The access token is invalid"),
    (422, load_fixture("mastodon", "error__validation"), PermanentError,
     "Validation failed: Text character limit of 1000 exceeded"),
    (403, b'{"error": "This action is not allowed"}', PermanentError, "This action is not allowed"),
    (404, load_fixture("mastodon", "error__not_found"), PermanentError,
     "The post this answers was deleted or is no longer visible to the brand account (Record not found)."),
    (500, b'{"error": "We\'re sorry, but something went wrong on our end."}', TransientError, "HTTP 500"),
    (503, b"<html>down for maintenance</html>", TransientError, "HTTP 503"),
])
async def test_send_errors_are_mapped_by_status(connector, platform, status, body, error, message) -> None:
    platform.post("/api/v1/statuses").respond(status, content=body)
    with pytest.raises(error) as info:
        await connector.send(DM_REPLY)
    assert type(info.value) is error and info.value.code == status
    assert message in str(info.value) and TOKEN not in str(info.value)


async def test_a_deleted_post_is_refused_before_posting(connector, platform) -> None:
    platform.get("/api/v1/statuses/113500000000000500").respond(404, content=load_fixture("mastodon", "error__not_found"))
    route = platform.post("/api/v1/statuses").mock(side_effect=[created()])
    with pytest.raises(PermanentError, match="deleted or is no longer visible"):
        await connector.send(DM_REPLY)
    assert not route.called


@pytest.mark.parametrize("exc", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError])
@pytest.mark.parametrize("path", ["/api/v1/statuses/113500000000000500", "/api/v1/statuses"])
async def test_timeouts_and_dropped_connections_are_transient(connector, platform, path, exc) -> None:
    route = platform.post(path) if path == "/api/v1/statuses" else platform.get(path)
    route.mock(side_effect=exc)
    with pytest.raises(TransientError) as info:
        await connector.send(DM_REPLY)
    assert isinstance(info.value.__cause__, exc)


async def test_an_unreadable_success_is_transient_so_the_key_makes_the_retry_safe(connector, platform) -> None:
    platform.post("/api/v1/statuses").respond(200, json={"id": "113500000000000800"})
    with pytest.raises(TransientError, match="accepted the reply"):
        await connector.send(DM_REPLY)
