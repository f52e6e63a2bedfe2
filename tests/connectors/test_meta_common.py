"""The Meta pieces Facebook, Instagram and WhatsApp share: handshake, signature, envelope, Graph errors."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
import respx
from harness import webhook_request

from connectors.meta_common import (
    GraphAPI,
    clean_json,
    handshake,
    parse_json_object,
    raise_for_graph_error,
    verify_signature,
)
from connectors.meta_common.graph import usage_wait
from socialcrm.connector import HandshakeResponse
from socialcrm.errors import (
    AuthFailed,
    InvalidSignature,
    MalformedPayload,
    PermanentError,
    RateLimited,
    TransientError,
)

SECRET = "meta-app-secret"
TOKEN = "EAAGraphToken123"
BASE = "https://graph.test"


# -- handshake -------------------------------------------------------------------------------

def hub(**query: str) -> object:
    return webhook_request(b"", {}, method="GET", query=query)


def test_handshake_echoes_the_challenge_for_the_right_token() -> None:
    request = hub(**{"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "tok"})
    assert handshake(request, "tok") == HandshakeResponse(200, "1158201444")


@pytest.mark.parametrize(("query", "token"), [
    ({"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "nope"}, "tok"),
    ({"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "tok"}, "tok"),
    ({"hub.mode": "subscribe", "hub.challenge": "1"}, "tok"),
    ({"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": ""}, ""),   # no token set: never matches
])
def test_handshake_refuses_with_403(query: dict[str, str], token: str) -> None:
    answer = handshake(hub(**query), token)
    assert answer is not None and answer.status == 403


def test_a_request_without_challenge_is_not_a_handshake() -> None:
    assert handshake(hub(**{"hub.mode": "subscribe"}), "tok") is None
    assert handshake(webhook_request(b"{}", {}, query={"hub.challenge": "1"}), "tok") is None


# -- signature -------------------------------------------------------------------------------

BODY = b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"message":{"text":"\\u00e4\\u00f6\\u00e5"}}]}]}'


def signature(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def test_signature_over_the_escaped_bytes_verifies() -> None:
    verify_signature(webhook_request(BODY, signature(BODY)), SECRET)


@pytest.mark.parametrize(("body", "headers", "words"), [
    (BODY, {}, "missing"),
    (BODY, signature(BODY, "other-secret"), "does not match"),
    (json.dumps(json.loads(BODY), ensure_ascii=False, separators=(",", ":")).encode(), signature(BODY), "does not match"),
])
def test_signature_failures(body: bytes, headers: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidSignature, match=words):
        verify_signature(webhook_request(body, headers), SECRET)


def test_an_empty_app_secret_verifies_nothing() -> None:
    """HMAC with an empty key is a signature anyone can make."""
    with pytest.raises(InvalidSignature, match="no app secret"):
        verify_signature(webhook_request(BODY, signature(BODY, "")), "")


# -- envelope ---------------------------------------------------------------------------------

def test_parse_json_object_returns_the_envelope() -> None:
    assert parse_json_object(BODY, "page")["entry"][0]["id"] == "1"


@pytest.mark.parametrize(("body", "words"), [
    (b"not json", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
    (b"[]", "not an object with an 'entry' list"),
    (b'{"object":"page","entry":{}}', "not an object with an 'entry' list"),
    (b'{"object":"instagram","entry":[]}', "expected 'page'"),
])
def test_parse_json_object_rejects_what_is_not_the_envelope(body: bytes, words: str) -> None:
    with pytest.raises(MalformedPayload, match=words):
        parse_json_object(body, "page")


def test_clean_json_makes_every_string_storable() -> None:
    dirty = json.loads('{"a\\u0000": ["half \\ud83d emoji", {"b": "nul \\u0000"}], "n": 5, "ok": "\\ud83d\\ude00"}')
    assert clean_json(dirty) == {"a\ufffd": ["half \ufffd emoji", {"b": "nul \ufffd"}], "n": 5, "ok": "😀"}


# -- GraphAPI ---------------------------------------------------------------------------------

async def test_graph_api_sends_the_token_as_a_bearer_header() -> None:
    async with httpx.AsyncClient() as http, respx.mock(base_url=BASE) as graph:
        route = graph.get("/v26.0/me").respond(200, json={"id": "1"})
        api = GraphAPI(http, BASE + "/", "v26.0", TOKEN, "Facebook")
        assert await api.get("me", fields="id,name") == {"id": "1"}
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert dict(request.url.params) == {"fields": "id,name"} and TOKEN not in str(request.url)
    assert TOKEN not in repr(api)


async def test_graph_api_can_still_use_the_access_token_parameter() -> None:
    async with httpx.AsyncClient() as http, respx.mock(base_url=BASE) as graph:
        route = graph.post("/v24.0/1/comments").respond(200, json={"id": "2"})
        api = GraphAPI(http, BASE, "v24.0", TOKEN, "Facebook", token_in="query")
        await api.post("1/comments", json_body={"message": "hi"})
    request = route.calls.last.request
    assert request.url.params["access_token"] == TOKEN and "Authorization" not in request.headers
    assert json.loads(request.content) == {"message": "hi"}


async def test_graph_api_delete_and_empty_answers() -> None:
    async with httpx.AsyncClient() as http, respx.mock(base_url=BASE) as graph:
        graph.delete("/v26.0/1_2").respond(200)
        assert await GraphAPI(http, BASE, "v26.0", TOKEN, "Facebook").delete("1_2") == {}


async def test_graph_api_maps_timeouts_to_transient() -> None:
    async with httpx.AsyncClient() as http, respx.mock(base_url=BASE) as graph:
        graph.get("/v26.0/me").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(TransientError, match="did not answer in time"):
            await GraphAPI(http, BASE, "v26.0", TOKEN, "Facebook").get("me")


# -- error mapping ---------------------------------------------------------------------------------

def error(code: int | None, status: int = 400, subcode: int | None = None, headers: dict | None = None,
          **extra: object) -> httpx.Response:
    body = {"message": "Graph says no", "type": "OAuthException", "fbtrace_id": "x", **extra}
    if code is not None:
        body["code"] = code
    if subcode is not None:
        body["error_subcode"] = subcode
    return httpx.Response(status, json={"error": body}, headers=headers)


@pytest.mark.parametrize(("response", "kind", "words"), [
    (error(190), AuthFailed, "rejected the access token (190)"),
    (error(102), AuthFailed, "(102)"),
    (httpx.Response(401), AuthFailed, "HTTP 401"),
    (error(4), RateLimited, "rate limit (4)"),
    (error(17), RateLimited, "rate limit (17)"),
    (error(32), RateLimited, "rate limit (32)"),
    (error(613), RateLimited, "rate limit (613)"),
    (error(80007), RateLimited, "rate limit (80007)"),
    (error(130429), RateLimited, "rate limit (130429)"),
    (error(131056), RateLimited, "rate limit (131056)"),
    (httpx.Response(429), RateLimited, "HTTP 429"),
    (error(10), PermanentError, "not granted this app the permission"),
    (error(10, subcode=2018278), PermanentError, "outside the allowed window"),
    (error(200), PermanentError, "lacks the permission"),
    (error(230), PermanentError, "lacks the permission"),
    (error(551), PermanentError, "not available right now"),
    (error(10900), PermanentError, "already been answered"),
    (error(10903), PermanentError, "cannot be replied to"),
    (error(131047), PermanentError, "only a template"),
    (error(131026), PermanentError, "could not be delivered"),
    (error(100), PermanentError, "rejected the request as invalid"),
    (error(100, subcode=33), PermanentError, "no longer exists"),
    (error(368), PermanentError, "Facebook refused it: Graph says no"),
    (httpx.Response(404, text="<html>"), PermanentError, "Facebook refused it: HTTP 404"),
    (error(1), TransientError, "failed (1)"),
    (error(2, status=500), TransientError, "failed (2)"),
    (error(1200), TransientError, "failed (1200)"),
    (error(None, is_transient=True), TransientError, "failed (None)"),
    (httpx.Response(503, text="down"), TransientError, "HTTP 503"),
])
def test_graph_errors_are_mapped_by_code(response: httpx.Response, kind: type, words: str) -> None:
    with pytest.raises(kind) as info:
        raise_for_graph_error(response, "Facebook")
    assert type(info.value) is kind and words in str(info.value)


def test_success_is_not_an_error() -> None:
    raise_for_graph_error(httpx.Response(200, json={"id": "1"}), "Facebook")


def test_the_message_text_never_decides_the_class() -> None:
    """A rate-limit message with a permission code is a permission error: codes decide."""
    response = httpx.Response(400, json={"error": {"message": "Application request limit reached", "code": 200}})
    with pytest.raises(PermanentError):
        raise_for_graph_error(response, "Facebook")


def test_code_and_multi_line_messages() -> None:
    with pytest.raises(TransientError) as info:
        raise_for_graph_error(httpx.Response(500, json={"error": {"message": "a\n  b", "code": 2}}), "Facebook")
    assert info.value.code == 2 and str(info.value) == "Facebook failed (2): a b"


@pytest.mark.parametrize(("headers", "wait"), [
    ({"X-Business-Use-Case-Usage": json.dumps({"1": [{"type": "pages", "call_count": 100,
                                                      "estimated_time_to_regain_access": 3}]})}, 180.0),
    ({"X-Business-Use-Case-Usage": json.dumps({"1": [{"call_count": 5, "estimated_time_to_regain_access": 1},
                                                     {"call_count": 100, "estimated_time_to_regain_access": 12}]})}, 720.0),
    ({"X-Business-Use-Case-Usage": json.dumps({"1": [{"call_count": 100, "estimated_time_to_regain_access": 0}]})}, 600.0),
    ({"X-App-Usage": json.dumps({"call_count": 100, "total_cputime": 1, "total_time": 1})}, 600.0),
    ({"X-App-Usage": json.dumps({"call_count": 99, "total_cputime": 1, "total_time": 1})}, 60.0),
    ({"X-App-Usage": "garbled{"}, 60.0),
    ({"X-Business-Use-Case-Usage": "[1, 2]"}, 60.0),
    ({}, 60.0),
])
def test_usage_wait_reads_the_usage_headers(headers: dict[str, str], wait: float) -> None:
    assert usage_wait(httpx.Response(400, headers=headers)) == wait
