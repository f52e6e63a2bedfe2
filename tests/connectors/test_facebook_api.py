"""Facebook replies, moderation and token check through respx: the exact requests, every error mapped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx

from connectors.facebook import FacebookConnector
from socialcrm.connector import (
    AuthFailed,
    OutboundReply,
    PermanentError,
    RateLimited,
    Sent,
    TransientError,
)

BASE = "https://graph.test"
TOKEN = "EAAGm0PX4ZCpsBAPageToken"
PAGE = "104650212345678"
V = "/v26.0"
PSID = "7012345678901234"
POST = f"{PAGE}_1234567890123456"
COMMENT = "1234567890123456_987654321098765"
NOW = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)

MESSENGER = OutboundReply(text="Hei Sven! Pakken kommer i morgen.", public=False, thread_external_id=PSID,
                          recipient_external_id=PSID, in_reply_to_external_id="m_Sven1", idempotency_key="k1")
PUBLIC = OutboundReply(text="Vi åpner 1. desember!", public=True, thread_external_id=POST,
                       recipient_external_id="5523456789012345", in_reply_to_external_id=COMMENT)
PRIVATE = OutboundReply(text="Hei Kari, vi har sendt deg en melding.", public=False, thread_external_id=POST,
                        recipient_external_id="5523456789012345", in_reply_to_external_id=COMMENT,
                        mode="private_reply")


@pytest.fixture
async def connector() -> AsyncIterator[FacebookConnector]:
    settings = {"page_id": PAGE, "app_secret": "s", "verify_token": "v", "access_token": TOKEN,
                "api_base_url": BASE + "/"}
    async with httpx.AsyncClient() as http:
        fb = FacebookConnector.from_settings(settings, http)
        fb.clock = lambda: NOW
        yield fb


@pytest.fixture
def graph() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def body(route: respx.Route) -> dict:
    return json.loads(route.calls.last.request.content)


def assert_authorised(request: httpx.Request) -> None:
    """The token travels in a header, never in the URL (URLs end up in logs)."""
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(request.url)


# -- send -------------------------------------------------------------------------------------

async def test_messenger_reply_inside_the_window_is_a_response(connector, graph) -> None:
    route = graph.post(f"{V}/{PAGE}/messages").respond(200, json={"recipient_id": PSID, "message_id": "m_Out1"})
    assert await connector.send(MESSENGER) == Sent("m_Out1", NOW)
    assert body(route) == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                           "message": {"text": "Hei Sven! Pakken kommer i morgen."}}
    assert_authorised(route.calls.last.request)


async def test_a_persons_reply_outside_the_window_carries_the_human_agent_tag(connector, graph) -> None:
    route = graph.post(f"{V}/{PAGE}/messages").respond(200, json={"recipient_id": PSID, "message_id": "m_Out2"})
    late = OutboundReply(text="Beklager ventetiden!", public=False, thread_external_id=PSID,
                         recipient_external_id=PSID, outside_window=True, human_agent=True)
    assert (await connector.send(late)).external_id == "m_Out2"
    assert body(route) == {"recipient": {"id": PSID}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
                           "message": {"text": "Beklager ventetiden!"}}


async def test_an_automated_reply_outside_the_window_is_never_sent(connector, graph) -> None:
    route = graph.post(f"{V}/{PAGE}/messages").respond(200, json={"message_id": "m_x"})
    bot = OutboundReply(text="Auto", public=False, thread_external_id=PSID, outside_window=True, human_agent=False)
    with pytest.raises(PermanentError, match="only a person"):
        await connector.send(bot)
    assert not route.called


async def test_public_reply_goes_under_the_customers_comment(connector, graph) -> None:
    route = graph.post(f"{V}/{COMMENT}/comments").respond(200, json={"id": "1234567890123456_987654321099001"})
    assert await connector.send(PUBLIC) == Sent("1234567890123456_987654321099001", NOW)
    assert body(route) == {"message": "Vi åpner 1. desember!"}
    assert_authorised(route.calls.last.request)


async def test_public_reply_without_a_comment_goes_under_the_post(connector, graph) -> None:
    route = graph.post(f"{V}/{POST}/comments").respond(200, json={"id": "1234567890123456_987654321099002"})
    reply = OutboundReply(text="Takk!", public=True, thread_external_id=POST)
    assert (await connector.send(reply)).external_id == "1234567890123456_987654321099002"
    assert route.called


async def test_private_reply_to_a_comment_uses_recipient_comment_id(connector, graph) -> None:
    route = graph.post(f"{V}/{PAGE}/messages").respond(200, json={"recipient_id": "6999", "message_id": "m_Priv1"})
    assert await connector.send(PRIVATE) == Sent("m_Priv1", NOW)
    assert body(route) == {"recipient": {"comment_id": COMMENT}, "messaging_type": "RESPONSE",
                           "message": {"text": "Hei Kari, vi har sendt deg en melding."}}


async def test_private_reply_to_a_visitors_post_uses_recipient_post_id(connector, graph) -> None:
    route = graph.post(f"{V}/{PAGE}/messages").respond(200, json={"recipient_id": "6999", "message_id": "m_Priv2"})
    visitor_post = f"{PAGE}_1299999999999999"
    reply = OutboundReply(text="Vi har sendt deg en melding.", public=False, thread_external_id=visitor_post,
                          in_reply_to_external_id=visitor_post, mode="private_reply")
    await connector.send(reply)
    assert body(route)["recipient"] == {"post_id": visitor_post}


async def test_templates_are_not_a_messenger_thing(connector) -> None:
    with pytest.raises(PermanentError, match="no message templates"):
        await connector.send(OutboundReply(text="", public=False, thread_external_id=PSID, mode="template"))


async def test_an_answer_without_an_id_is_not_retried(connector, graph) -> None:
    """Meta has no idempotency key: a retry could send the reply twice."""
    graph.post(f"{V}/{PAGE}/messages").respond(200, json={"recipient_id": PSID})
    with pytest.raises(PermanentError, match="did not say its id"):
        await connector.send(MESSENGER)


async def test_without_an_access_token_nothing_is_sent() -> None:
    async with httpx.AsyncClient() as http:
        fb = FacebookConnector.from_settings({"page_id": PAGE, "app_secret": "s", "api_base_url": BASE}, http)
        with pytest.raises(AuthFailed, match="No Page access token"):
            await fb.send(MESSENGER)


# -- errors, by Graph error code ------------------------------------------------------------

def graph_error(code: int, subcode: int | None = None, message: str = "An error", status: int = 400) -> httpx.Response:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return httpx.Response(status, json={"error": error})


BUC = json.dumps({PAGE: [{"type": "pages", "call_count": 100, "total_cputime": 12, "total_time": 15,
                          "estimated_time_to_regain_access": 7}]})


@pytest.mark.parametrize(("answer", "error", "words"), [
    (graph_error(190, 460, "Error validating access token: password changed"), AuthFailed, "rejected the access token"),
    (graph_error(190, 463, "Session has expired"), AuthFailed, "(190)"),
    (graph_error(4, message="Application request limit reached"), RateLimited, "rate limit (4)"),
    (graph_error(17, message="User request limit reached"), RateLimited, "rate limit (17)"),
    (graph_error(32, message="Page request limit reached"), RateLimited, "rate limit (32)"),
    (graph_error(613, message="Calls to this api have exceeded the rate limit."), RateLimited, "rate limit (613)"),
    (graph_error(80007, message="There have been too many messages"), RateLimited, "rate limit (80007)"),
    (graph_error(10, message="Requires pages_messaging permission"), PermanentError, "permission"),
    (graph_error(10, 2018278, "This message is sent outside of allowed window."), PermanentError, "outside the allowed window"),
    (graph_error(200, message="Permissions error"), PermanentError, "lacks the permission"),
    (graph_error(230, message="Requires pages_messaging permission to manage the object"), PermanentError, "lacks the permission"),
    (graph_error(551, 1545041, "This person isn't available right now."), PermanentError, "not available right now"),
    (graph_error(10900, message="Activity already replied to"), PermanentError, "already been answered"),
    (graph_error(10903, message="This activity can't be replied to"), PermanentError, "cannot be replied to"),
    (graph_error(100, 33, "Unsupported post request. Object does not exist"), PermanentError, "no longer exists"),
    (graph_error(1200, message="Temporary send message failure. Please try again later"), TransientError, "(1200)"),
    (graph_error(2, message="An unexpected error has occurred. Please retry your request later.", status=500),
     TransientError, "failed (2)"),
    (httpx.Response(502, text="<html>Bad Gateway</html>"), TransientError, "HTTP 502"),
    (httpx.Response(503), TransientError, "HTTP 503"),
])
async def test_send_maps_graph_errors_by_code(connector, graph, answer, error, words) -> None:
    graph.post(f"{V}/{PAGE}/messages").mock(return_value=answer)
    with pytest.raises(error) as info:
        await connector.send(MESSENGER)
    assert type(info.value) is error and words in str(info.value)
    assert "\n" not in str(info.value) and TOKEN not in str(info.value)


async def test_a_permanent_error_keeps_the_graph_code(connector, graph) -> None:
    graph.post(f"{V}/{COMMENT}/comments").mock(return_value=graph_error(551, 1545041))
    with pytest.raises(PermanentError) as info:
        await connector.send(PUBLIC)
    assert info.value.code == 551


@pytest.mark.parametrize(("headers", "wait"), [
    ({"X-Business-Use-Case-Usage": BUC}, 420.0),                                          # 7 minutes, as Meta says
    ({"X-App-Usage": json.dumps({"call_count": 100, "total_cputime": 20, "total_time": 30})}, 600.0),
    ({"X-Page-Usage": json.dumps({"call_count": 40, "total_cputime": 100, "total_time": 30})}, 600.0),
    ({"X-App-Usage": json.dumps({"call_count": 80, "total_cputime": 20, "total_time": 30})}, 60.0),
    ({}, 60.0),
])
async def test_rate_limit_waits_what_the_usage_headers_say(connector, graph, headers, wait) -> None:
    answer = graph_error(32, message="Page request limit reached")
    graph.post(f"{V}/{PAGE}/messages").mock(return_value=httpx.Response(400, json=answer.json(), headers=headers))
    with pytest.raises(RateLimited) as info:
        await connector.send(MESSENGER)
    assert info.value.retry_after == wait


TRANSPORT_ERRORS = [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.PoolTimeout, httpx.ConnectError,
                    httpx.ReadError, httpx.RemoteProtocolError]
CALLS = {
    "send": (lambda fb: fb.send(MESSENGER), "POST", f"{V}/{PAGE}/messages"),
    "reply": (lambda fb: fb.send(PUBLIC), "POST", f"{V}/{COMMENT}/comments"),
    "check": (lambda fb: fb.check(), "GET", f"{V}/me"),
    "hide": (lambda fb: fb.moderate("hide", COMMENT), "POST", f"{V}/{COMMENT}"),
    "delete": (lambda fb: fb.moderate("delete", COMMENT), "DELETE", f"{V}/{COMMENT}"),
    "poll": (lambda fb: fb.poll("1795510800"), "GET", f"{V}/{PAGE}/conversations"),
}


@pytest.mark.parametrize("failure", TRANSPORT_ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("call", sorted(CALLS))
async def test_transport_failures_and_timeouts_are_transient(connector, graph, call, failure) -> None:
    run, method, path = CALLS[call]
    graph.route(method=method, path=path).mock(side_effect=failure("boom"))
    with pytest.raises(TransientError) as info:
        await run(connector)
    assert isinstance(info.value.__cause__, failure) and TOKEN not in str(info.value)


async def test_a_success_without_json_is_transient(connector, graph) -> None:
    graph.get(f"{V}/me").respond(200, text="<html>proxy login</html>")
    with pytest.raises(TransientError, match="without JSON"):
        await connector.check()


# -- moderation and check -----------------------------------------------------------------------

@pytest.mark.parametrize(("action", "hidden"), [("hide", True), ("unhide", False)])
async def test_hide_and_unhide_set_is_hidden(connector, graph, action, hidden) -> None:
    route = graph.post(f"{V}/{COMMENT}").respond(200, json={"success": True})
    await connector.moderate(action, COMMENT)
    assert body(route) == {"is_hidden": hidden}
    assert_authorised(route.calls.last.request)


async def test_delete_deletes_the_comment(connector, graph) -> None:
    route = graph.delete(f"{V}/{COMMENT}").respond(200, json={"success": True})
    await connector.moderate("delete", COMMENT)
    assert route.called and route.calls.last.request.content == b""


async def test_moderation_errors_are_mapped_too(connector, graph) -> None:
    graph.delete(f"{V}/{COMMENT}").mock(return_value=graph_error(200, message="Permissions error"))
    with pytest.raises(PermanentError, match="lacks the permission"):
        await connector.moderate("delete", COMMENT)


async def test_unknown_moderation_action_is_refused_without_a_call(connector, graph) -> None:
    with pytest.raises(PermanentError, match="cannot ban"):
        await connector.moderate("ban", COMMENT)
    assert not graph.calls


async def test_check_accepts_this_pages_token(connector, graph) -> None:
    route = graph.get(f"{V}/me").respond(200, json={"id": PAGE, "name": "Nordlys Sko"})
    await connector.check()
    assert route.calls.last.request.url.params["fields"] == "id,name"
    assert_authorised(route.calls.last.request)


@pytest.mark.parametrize("answer", [
    httpx.Response(200, json={"id": "209871234567890", "name": "Nordlys Outlet"}),   # another Page's token
    graph_error(190, 463, "Error validating access token: Session has expired"),
])
async def test_check_fails_for_another_page_or_an_expired_token(connector, graph, answer) -> None:
    graph.get(f"{V}/me").mock(return_value=answer)
    with pytest.raises(AuthFailed):
        await connector.check()
