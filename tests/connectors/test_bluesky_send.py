"""Bluesky replies through respx: the createRecord body exactly, reply refs, facets, errors mapped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx
from harness import load_fixture

from connectors.bluesky import BlueskyConnector
from socialcrm.connector import (
    AuthFailed,
    OutboundReply,
    PermanentError,
    RateLimited,
    Sent,
    TransientError,
)

BASE = "https://pds.test"
IDENTIFIER = "nordlysko.bsky.social"
PASSWORD = "k7qx-2mfd-9zpw-h4ne"
NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
SESSION = "/xrpc/com.atproto.server.createSession"
REFRESH = "/xrpc/com.atproto.server.refreshSession"
GET_POSTS = "/xrpc/app.bsky.feed.getPosts"
RESOLVE = "/xrpc/com.atproto.identity.resolveHandle"
CREATE = "/xrpc/com.atproto.repo.createRecord"

BRAND_DID = "did:plc:brandzz5kq3ocvxn7wuyi2hf"
BRAND_POST = {"uri": "at://did:plc:brandzz5kq3ocvxn7wuyi2hf/app.bsky.feed.post/3lbrandpost2a",
              "cid": "bafyreibrandp2akq7x3ocvxn7wuyi2hfbrandzz5kq3ocvxn7wuyi2hfa"}
INGRID_POST = {"uri": "at://did:plc:ingridhx4m7q2vkaoe5tzw3b/app.bsky.feed.post/3lbzingment2a",
               "cid": "bafyreiingment2aq7x3ocvxn7wuyi2hfingridhx4m7q2vkaoe5tzw3ba"}
SVEN_POST = {"uri": "at://did:plc:svenkq7a2m4xwbt3oepzc6yh/app.bsky.feed.post/3lbzsvenrep2c",
             "cid": "bafyreid3svenrep2cq7x3ocvxn7wuyi2hfsvenkq7a2m4xwbt3oepzc6ya"}
SENT = Sent("at://did:plc:brandzz5kq3ocvxn7wuyi2hf/app.bsky.feed.post/3lbzreply7x2k", NOW)


def fixture(name: str) -> dict:
    return json.loads(load_fixture("bluesky", name))


def reply_to(post: dict, text: str = "Hei Ingrid! Pakken er på vei.", **fields: object) -> OutboundReply:
    values = {"text": text, "public": True, "thread_external_id": INGRID_POST["uri"],
              "in_reply_to_external_id": post["uri"], "idempotency_key": "reply-17", **fields}
    return OutboundReply(**values)


def post_body(text: str, root: dict, parent: dict, **record: object) -> dict:
    """What createRecord must receive, written out in full."""
    return {"repo": BRAND_DID, "collection": "app.bsky.feed.post", "record": {
        "$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-25T09:00:00.000Z",
        "reply": {"root": root, "parent": parent}, **record}}


@pytest.fixture
async def connector() -> AsyncIterator[BlueskyConnector]:
    settings = BlueskyConnector.Settings.model_validate(
        {"identifier": IDENTIFIER, "app_password": PASSWORD, "api_base_url": BASE + "/"})
    async with httpx.AsyncClient() as http:
        yield BlueskyConnector(settings, http, clock=lambda: NOW)


@pytest.fixture
def platform() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post(SESSION, name="session").respond(200, json=fixture("create_session__ok"))
        router.get(GET_POSTS, name="posts").respond(200, json=fixture("get_posts__top_level"))
        router.post(CREATE, name="create").respond(200, json=fixture("create_record__ok"))
        yield router


def sent_body(platform: respx.MockRouter) -> dict:
    return json.loads(platform["create"].calls.last.request.content)


# -- the record ------------------------------------------------------------------------------

async def test_a_reply_to_a_top_level_post_has_it_as_root_and_parent(connector, platform) -> None:
    assert await connector.send(reply_to(INGRID_POST)) == SENT
    assert sent_body(platform) == post_body("Hei Ingrid! Pakken er på vei.", INGRID_POST, INGRID_POST)
    assert dict(platform["posts"].calls.last.request.url.params) == {"uris": INGRID_POST["uri"]}
    request = platform["create"].calls.last.request
    assert request.headers["Authorization"] == "Bearer eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJIUzI1NiJ9.access-one.sig-a1"
    assert request.headers["Content-Type"] == "application/json"


async def test_a_reply_to_a_nested_reply_keeps_the_threads_root(connector, platform) -> None:
    platform["posts"].respond(200, json=fixture("get_posts__thread"))
    await connector.send(reply_to(SVEN_POST, "Hej Sven, vi kollar din order."))
    assert sent_body(platform) == post_body("Hej Sven, vi kollar din order.", BRAND_POST, SVEN_POST)
    assert dict(platform["posts"].calls.last.request.url.params) == {"uris": SVEN_POST["uri"]}


async def test_without_in_reply_to_the_thread_root_is_answered(connector, platform) -> None:
    await connector.send(reply_to(INGRID_POST, in_reply_to_external_id=None))
    assert dict(platform["posts"].calls.last.request.url.params) == {"uris": INGRID_POST["uri"]}
    assert sent_body(platform)["record"]["reply"] == {"root": INGRID_POST, "parent": INGRID_POST}


async def test_mention_and_link_facets_count_utf8_bytes(connector, platform) -> None:
    resolve = platform.get(RESOLVE).respond(200, json=fixture("resolve_handle__ok"))
    text = "Hei æøå 😀👍🏽 @Ingrid.bsky.social, se https://nordlysko.no/retur?ordre=48213."
    await connector.send(reply_to(INGRID_POST, text))
    # "Hei " 4 + "æøå" 6 + " " 1 + "😀" 4 + "👍🏽" 8 + " " 1 = 24; "@Ingrid.bsky.social" is 19 bytes;
    # ", se " 5 more = 48; the URL is 38 bytes; the full stop after it is not part of the link.
    assert sent_body(platform) == post_body(text, INGRID_POST, INGRID_POST, facets=[
        {"index": {"byteStart": 24, "byteEnd": 43},
         "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:ingridhx4m7q2vkaoe5tzw3b"}]},
        {"index": {"byteStart": 48, "byteEnd": 86},
         "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://nordlysko.no/retur?ordre=48213"}]},
    ])
    assert dict(resolve.calls.last.request.url.params) == {"handle": "ingrid.bsky.social"}


async def test_a_handle_that_does_not_resolve_stays_plain_text(connector, platform) -> None:
    resolve = platform.get(RESOLVE).respond(400, json=fixture("error__handle_not_found"))
    await connector.send(reply_to(INGRID_POST, "Spør @ukjent.example.com eller @ukjent.example.com!"))
    assert "facets" not in sent_body(platform)["record"]
    assert resolve.call_count == 1, "each handle is looked up once"


async def test_a_reply_expired_token_is_refreshed_and_sent_once(connector, platform) -> None:
    platform["create"].mock(side_effect=[httpx.Response(400, json=fixture("error__expired_token")),
                                         httpx.Response(200, json=fixture("create_record__ok"))])
    platform.post(REFRESH).respond(200, json=fixture("refresh_session__ok"))
    assert await connector.send(reply_to(INGRID_POST)) == SENT
    first, second = (json.loads(c.request.content) for c in platform["create"].calls)
    assert first == second and platform["create"].calls.last.request.headers["Authorization"].endswith("access-two.sig-a2")


# -- refused before any call -----------------------------------------------------------------

@pytest.mark.parametrize("fields", [{"public": False}, {"mode": "private_reply"}])
async def test_chat_is_not_supported(connector, platform, fields) -> None:
    with pytest.raises(PermanentError, match="Bluesky chat is not supported"):
        await connector.send(reply_to(INGRID_POST, **fields))
    assert not any(route.called for route in platform.routes)


async def test_text_over_3000_bytes_is_refused_in_plain_words(connector, platform) -> None:
    with pytest.raises(PermanentError, match="at most 3000 bytes"):
        await connector.send(reply_to(INGRID_POST, "👩‍👩‍👧" * 200))  # 200 graphemes, 3,600 bytes
    assert not platform["create"].called


async def test_a_deleted_parent_is_permanent(connector, platform) -> None:
    platform["posts"].respond(200, json=fixture("get_posts__not_found"))
    with pytest.raises(PermanentError, match="no longer on Bluesky"):
        await connector.send(reply_to(INGRID_POST))
    assert not platform["create"].called


# -- errors ---------------------------------------------------------------------------------

async def test_429_waits_until_ratelimit_reset(connector, platform) -> None:
    platform["create"].respond(429, json=fixture("error__rate_limited"), headers=fixture("error__rate_limited.headers"))
    with pytest.raises(RateLimited) as info:
        await connector.send(reply_to(INGRID_POST))
    assert info.value.retry_after == 42.0  # ratelimit-reset 2026-11-25T09:00:42Z, now 09:00:00
    assert "retry in 42 s" in str(info.value) and info.value.code == "RateLimitExceeded"


@pytest.mark.parametrize(("headers", "expected"), [
    ({"ratelimit-reset": "1795597000"}, 0.0),        # already past: retry now, never a negative wait
    ({"ratelimit-reset": "30"}, 30.0),               # seconds, as the IETF RateLimit draft has it
    ({"retry-after": "17"}, 17.0),
    ({"ratelimit-reset": "soon"}, 60.0),
    ({}, 60.0),
])
async def test_429_without_a_usable_reset(connector, platform, headers, expected) -> None:
    platform["create"].respond(429, headers=headers)
    with pytest.raises(RateLimited) as info:
        await connector.send(reply_to(INGRID_POST))
    assert info.value.retry_after == expected


async def test_400_invalid_request_is_permanent_in_the_platforms_words(connector, platform) -> None:
    platform["create"].respond(400, json=fixture("error__invalid_request"))
    with pytest.raises(PermanentError) as info:
        await connector.send(reply_to(INGRID_POST))
    assert str(info.value) == ("Bluesky refused the request: Invalid app.bsky.feed.post record: "
                               "Record/text must not be longer than 300 graphemes")
    assert info.value.code == "InvalidRequest"


@pytest.mark.parametrize(("status", "body", "error", "words"), [
    (500, "error__internal", TransientError, "Bluesky failed (HTTP 500): Internal Server Error"),
    (503, None, TransientError, "HTTP 503"),
    (404, None, PermanentError, "Bluesky refused the request (HTTP 404)"),
    (413, None, PermanentError, "HTTP 413"),
])
async def test_status_codes_are_mapped(connector, platform, status, body, error, words) -> None:
    platform["create"].respond(status, **({"json": fixture(body)} if body else {"text": "<html>proxy</html>"}))
    with pytest.raises(error) as info:
        await connector.send(reply_to(INGRID_POST))
    assert type(info.value) is error and words in str(info.value)


async def test_a_5xx_then_success_sends_on_the_retry(connector, platform) -> None:
    platform["create"].mock(side_effect=[httpx.Response(502, json=fixture("error__internal")),
                                         httpx.Response(200, json=fixture("create_record__ok"))])
    with pytest.raises(TransientError):
        await connector.send(reply_to(INGRID_POST))
    assert await connector.send(reply_to(INGRID_POST)) == SENT  # the outbox retries later
    assert platform["session"].call_count == 1


@pytest.mark.parametrize("route", ["create", "posts", "session"])
@pytest.mark.parametrize("exc", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError])
async def test_timeouts_and_connection_errors_are_transient(connector, platform, route, exc) -> None:
    platform[route].mock(side_effect=exc)
    with pytest.raises(TransientError) as info:
        await connector.send(reply_to(INGRID_POST))
    assert isinstance(info.value.__cause__, exc)


async def test_a_bad_password_stops_sending(connector, platform) -> None:
    platform["session"].respond(401, json=fixture("error__auth_required"))
    with pytest.raises(AuthFailed):
        await connector.send(reply_to(INGRID_POST))
    assert not platform["create"].called


@pytest.mark.parametrize("answer", [{"cid": "x"}, []])
async def test_an_unreadable_answer_is_transient(connector, platform, answer) -> None:
    platform["create"].respond(200, json=answer)
    with pytest.raises(TransientError, match="without its uri"):
        await connector.send(reply_to(INGRID_POST))


async def test_an_unreadable_parent_is_transient(connector, platform) -> None:
    platform["posts"].respond(200, json={"posts": [{"uri": INGRID_POST["uri"]}]})
    with pytest.raises(TransientError, match="unreadable post"):
        await connector.send(reply_to(INGRID_POST))
