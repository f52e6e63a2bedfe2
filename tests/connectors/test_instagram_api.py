"""The Instagram connector's Graph API calls through respx: exact requests, every error class."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from harness import load_fixture, webhook_request

from connectors.instagram import InstagramConnector, api
from socialcrm.connector import (
    AuthFailed,
    Author,
    OutboundReply,
    PermanentError,
    RateLimited,
    TransientError,
)

BASE = "http://graph.test"
V = "/v26.0"
TOKEN = "ig-access-token-c0ffee"
ACCOUNT = "17841405822304914"
PAGE = "105000000000001"
CUSTOMER = "7130482395716248"
MEDIA = "18050310947722369"
COMMENT = "17867301270523379"
SETTINGS = {"app_secret": "s3cret", "verify_token": "v", "access_token": TOKEN, "ig_user_id": ACCOUNT,
            "api_base_url": BASE + "/"}
NOW = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)

DM = OutboundReply(text="Hei! Pakken kommer i morgen.", public=False, thread_external_id=CUSTOMER,
                   recipient_external_id=CUSTOMER, in_reply_to_external_id="m.1", idempotency_key="socialcrm-outbox-7")
PUBLIC = OutboundReply(text="Beklager! Vi sender deg en DM.", public=True, thread_external_id=MEDIA,
                       recipient_external_id="848067418322071", in_reply_to_external_id=COMMENT)
PRIVATE = replace(PUBLIC, public=False, mode="private_reply", text="Hei Sven, her er sporingsnummeret.")


@pytest.fixture
async def connector() -> AsyncIterator[InstagramConnector]:
    async with httpx.AsyncClient() as http:
        yield InstagramConnector.from_settings(SETTINGS, http)


@pytest.fixture
def graph() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "utcnow", lambda: NOW)


def graph_error(code: int, status: int = 400, **extra: object) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": f"(#{code}) words Meta may change", "type": "OAuthException",
                                                  "code": code, "fbtrace_id": "AbC", **extra}})


def assert_authorised(request: httpx.Request) -> None:
    """The token travels in a header, never in the URL (request lines get logged)."""
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(request.url) and "access_token" not in str(request.url)


# -- send ------------------------------------------------------------------------------------

async def test_dm_reply_inside_the_window_is_a_response(connector, graph) -> None:
    route = graph.post(f"{V}/{ACCOUNT}/messages").respond(200, json={"recipient_id": CUSTOMER, "message_id": "m.out.1"})
    sent = await connector.send(DM)
    assert (sent.external_id, sent.sent_at) == ("m.out.1", NOW)
    request = route.calls.last.request
    assert json.loads(request.content) == {"recipient": {"id": CUSTOMER}, "messaging_type": "RESPONSE",
                                           "message": {"text": "Hei! Pakken kommer i morgen."}}
    assert_authorised(request)


async def test_dm_reply_outside_the_window_carries_the_human_agent_tag(connector, graph) -> None:
    route = graph.post(f"{V}/{ACCOUNT}/messages").respond(200, json={"recipient_id": CUSTOMER, "message_id": "m.out.2"})
    await connector.send(replace(DM, outside_window=True))
    assert json.loads(route.calls.last.request.content) == {
        "recipient": {"id": CUSTOMER}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
        "message": {"text": "Hei! Pakken kommer i morgen."}}


async def test_an_automated_reply_outside_the_window_is_never_sent(connector, graph) -> None:
    route = graph.post(f"{V}/{ACCOUNT}/messages").respond(200, json={"message_id": "x"})
    with pytest.raises(PermanentError, match="person's reply"):
        await connector.send(replace(DM, outside_window=True, human_agent=False))
    assert not route.called


async def test_dms_go_through_the_linked_page_when_one_is_set(graph) -> None:
    route = graph.post(f"{V}/{PAGE}/messages").respond(200, json={"recipient_id": CUSTOMER, "message_id": "m.out.3"})
    async with httpx.AsyncClient() as http:
        connector = InstagramConnector.from_settings({**SETTINGS, "page_id": PAGE}, http)
        assert (await connector.send(DM)).external_id == "m.out.3"
    assert route.called


async def test_public_reply_to_a_comment_goes_under_it(connector, graph) -> None:
    route = graph.post(f"{V}/{COMMENT}/replies").respond(200, json={"id": "17873440459141021"})
    sent = await connector.send(PUBLIC)
    assert sent.external_id == "17873440459141021"
    request = route.calls.last.request
    assert parse_qs(request.content.decode()) == {"message": ["Beklager! Vi sender deg en DM."]}
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert_authorised(request)


async def test_public_reply_without_a_comment_comments_on_the_media(connector, graph) -> None:
    route = graph.post(f"{V}/{MEDIA}/comments").respond(200, json={"id": "17873440459141022"})
    await connector.send(replace(PUBLIC, in_reply_to_external_id=MEDIA))
    assert parse_qs(route.calls.last.request.content.decode()) == {"message": ["Beklager! Vi sender deg en DM."]}


async def test_public_reply_to_a_mention_goes_through_mentions(connector, graph) -> None:
    route = graph.post(f"{V}/{ACCOUNT}/mentions").respond(200, json={"id": "17873440459141023"})
    await connector.send(replace(PUBLIC, extra={"in_reply_to_kind": "mention"}))
    assert parse_qs(route.calls.last.request.content.decode()) == {
        "media_id": [MEDIA], "comment_id": [COMMENT], "message": ["Beklager! Vi sender deg en DM."]}


async def test_private_reply_to_a_comment_names_the_comment(connector, graph) -> None:
    route = graph.post(f"{V}/{ACCOUNT}/messages").respond(200, json={"recipient_id": "848067418322071",
                                                                     "message_id": "m.out.4"})
    assert (await connector.send(PRIVATE)).external_id == "m.out.4"
    assert json.loads(route.calls.last.request.content) == {
        "recipient": {"comment_id": COMMENT}, "message": {"text": "Hei Sven, her er sporingsnummeret."}}


async def test_ids_are_escaped_in_paths(connector, graph) -> None:
    route = graph.post(f"{V}/1%2F..%2Fme/replies").respond(200, json={"id": "1"})
    await connector.send(replace(PUBLIC, in_reply_to_external_id="1/../me"))
    assert route.called


async def test_templates_do_not_exist_on_instagram(connector, graph) -> None:
    with pytest.raises(PermanentError, match="no message templates"):
        await connector.send(replace(DM, mode="template", template={"name": "x", "language": "sv"}))


@pytest.mark.parametrize(("answer", "error", "words"), [
    (graph_error(190, 401), AuthFailed, "rejected the access token"),
    (graph_error(190, 400, error_subcode=463), AuthFailed, "rejected the access token"),
    (graph_error(4), RateLimited, "rate limit"),
    (graph_error(17), RateLimited, "rate limit"),
    (graph_error(32), RateLimited, "rate limit"),
    (graph_error(613), RateLimited, "rate limit"),
    (graph_error(80007), RateLimited, "rate limit"),
    (graph_error(10, 403), PermanentError, "permission"),
    (graph_error(200, 403), PermanentError, "permission"),
    (graph_error(230, 403), PermanentError, "permission"),
    (graph_error(551), PermanentError, "not available"),
    (graph_error(10900), PermanentError, "already been answered"),
    (graph_error(10903), PermanentError, "cannot be replied to"),
    (graph_error(2, 503, is_transient=True), TransientError, "failed"),
    (httpx.Response(500, text="<html>oops</html>"), TransientError, "HTTP 500"),
    (httpx.Response(502, json={"error": {"message": "bad gateway"}}), TransientError, "failed"),
])
async def test_graph_errors_are_mapped_by_code(connector, graph, answer, error, words) -> None:
    graph.post(f"{V}/{ACCOUNT}/messages").mock(return_value=answer)
    with pytest.raises(error) as info:
        await connector.send(DM)
    assert type(info.value) is error and words in str(info.value)
    assert TOKEN not in str(info.value)


async def test_rate_limit_waits_as_the_usage_header_says(connector, graph) -> None:
    usage = json.dumps({ACCOUNT: [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 7}]})
    graph.post(f"{V}/{ACCOUNT}/messages").mock(return_value=httpx.Response(
        400, headers={"X-Business-Use-Case-Usage": usage}, json={"error": {"code": 80007, "message": "slow"}}))
    with pytest.raises(RateLimited) as info:
        await connector.send(DM)
    assert (info.value.retry_after, info.value.code) == (420.0, 80007)


@pytest.mark.parametrize(("answer", "error", "words"), [
    (httpx.Response(200, text="not json"), PermanentError, "without JSON; check Instagram before trying again"),
    (httpx.Response(200, json={"recipient_id": CUSTOMER}), PermanentError, "check Instagram before sending again"),
])
async def test_unreadable_success_is_never_retried_blindly(connector, graph, answer, error, words) -> None:
    """Meta has no idempotency key: a retry of a reply that did go out would post it twice."""
    graph.post(f"{V}/{ACCOUNT}/messages").mock(return_value=answer)
    with pytest.raises(error, match=words):
        await connector.send(DM)


TRANSPORT_ERRORS = [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError]
CALLS = {
    "send": (lambda c: c.send(DM), "POST", f"{V}/{ACCOUNT}/messages"),
    "poll": (lambda c: c.poll(None), "GET", f"{V}/{ACCOUNT}/media"),
    "check": (lambda c: c.check(), "GET", f"{V}/{ACCOUNT}"),
    "moderate": (lambda c: c.moderate("hide", COMMENT), "POST", f"{V}/{COMMENT}"),
}


@pytest.mark.parametrize("exc", TRANSPORT_ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("call", sorted(CALLS))
async def test_every_transport_error_becomes_transient(connector, graph, call, exc) -> None:
    invoke, method, path = CALLS[call]
    graph.route(method=method, path=path).mock(side_effect=exc)
    with pytest.raises(TransientError) as info:
        await invoke(connector)
    assert isinstance(info.value.__cause__, exc)


# -- hydrate (mentions carry only ids) -------------------------------------------------------

def mention_events(connector: InstagramConnector) -> list:
    body = load_fixture("instagram", "mention__ids_only")
    signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    request = webhook_request(body, {"X-Hub-Signature-256": signature})
    connector.verify(request)
    return connector.parse(request)


MENTIONED = {"mentioned_comment": {"id": "17894227972186120", "text": "Har @nordicbrand den i blått?",
                                   "timestamp": "2026-11-24T10:30:58+0000", "username": "kari_n",
                                   "media": {"id": "17918195224117851"}}, "id": ACCOUNT}


async def test_hydrate_fetches_the_mentioned_comment(connector, graph) -> None:
    route = graph.get(f"{V}/{ACCOUNT}").respond(200, json=MENTIONED)
    [mention] = mention_events(connector)
    [full] = await connector.hydrate([mention])
    assert route.calls.last.request.url.params["fields"] == \
        "mentioned_comment.comment_id(17894227972186120){id,text,timestamp,username,media{id}}"
    assert_authorised(route.calls.last.request)
    assert (full.kind, full.external_id, full.thread_external_id, full.in_reply_to_external_id) == \
        ("mention", "17894227972186120", "17918195224117851", "17918195224117851")
    assert (full.text, full.author, full.detail) == ("Har @nordicbrand den i blått?", Author("@kari_n", handle="kari_n"), {})
    assert full.created_at == datetime(2026, 11, 24, 10, 30, 58, tzinfo=UTC)
    assert full.raw["mentioned_comment"]["username"] == "kari_n" and full.raw["webhook"] == mention.raw


async def test_hydrate_leaves_complete_events_alone(connector, graph) -> None:
    route = graph.get(path__regex=r".*").respond(200, json=MENTIONED)
    [mention] = mention_events(connector)
    done = replace(mention, detail={})
    assert await connector.hydrate([done]) == [done] and not route.called


@pytest.mark.parametrize(("answer", "error"), [
    (graph_error(4), RateLimited), (graph_error(190, 401), AuthFailed), (httpx.Response(503), TransientError),
])
async def test_hydrate_failures_that_may_pass_propagate(connector, graph, answer, error) -> None:
    """The core keeps the stored delivery and retries it later."""
    graph.get(f"{V}/{ACCOUNT}").mock(return_value=answer)
    with pytest.raises(error):
        await connector.hydrate(mention_events(connector))


@pytest.mark.parametrize("answer", [graph_error(100), httpx.Response(200, json={"id": ACCOUNT})])
async def test_a_mention_meta_will_never_give_stays_without_text(connector, graph, answer) -> None:
    graph.get(f"{V}/{ACCOUNT}").mock(return_value=answer)
    [mention] = mention_events(connector)
    [kept] = await connector.hydrate([mention])
    assert (kept.text, kept.author, kept.kind) == ("", mention.author, "mention")
    assert set(kept.detail) == {"fetch_error"} and kept.detail["fetch_error"]


async def test_a_non_numeric_comment_id_is_never_put_in_a_field_expression(connector, graph) -> None:
    route = graph.get(path__regex=r".*").respond(200, json=MENTIONED)
    [mention] = mention_events(connector)
    [kept] = await connector.hydrate([replace(mention, external_id="1){id}")])
    assert not route.called and "not numeric" in kept.detail["fetch_error"]


# -- moderation ------------------------------------------------------------------------------

@pytest.mark.parametrize(("action", "hide"), [("hide", "true"), ("unhide", "false")])
async def test_hide_and_unhide_post_the_documented_flag(connector, graph, action, hide) -> None:
    route = graph.post(f"{V}/{COMMENT}").respond(200, json={"success": True})
    await connector.moderate(action, COMMENT)
    assert dict(route.calls.last.request.url.params) == {"hide": hide}
    assert_authorised(route.calls.last.request)


async def test_delete_deletes_the_comment(connector, graph) -> None:
    route = graph.delete(f"{V}/{COMMENT}").respond(200, json={"success": True})
    await connector.moderate("delete", COMMENT)
    assert route.called


async def test_moderation_that_meta_does_not_confirm_fails(connector, graph) -> None:
    graph.post(f"{V}/{COMMENT}").respond(200, json={"success": False})
    with pytest.raises(PermanentError, match="hidden"):
        await connector.moderate("hide", COMMENT)


async def test_an_unknown_action_is_refused_without_a_call(connector, graph) -> None:
    route = graph.route(path__regex=r".*").respond(200, json={"success": True})
    with pytest.raises(PermanentError):
        await connector.moderate("pin", COMMENT)
    assert not route.called


# -- poll (reconciliation of recent comments) -------------------------------------------------

def comment(cid: str, at: str, text: str, author: str = "848067418322071", **extra: object) -> dict:
    return {"id": cid, "text": text, "timestamp": at, "from": {"id": author, "username": "sven.nilsson"}, **extra}


def mock_poll(graph: respx.MockRouter, comments: list[dict]) -> tuple[respx.Route, respx.Route]:
    media = graph.get(f"{V}/{ACCOUNT}/media").respond(200, json={"data": [{"id": MEDIA}], "paging": {}})
    page = graph.get(f"{V}/{MEDIA}/comments").respond(200, json={"data": comments})
    return media, page


async def test_poll_returns_comments_newer_than_the_cursor(connector, graph) -> None:
    reply = comment("c.3", "2026-11-24T10:09:00+0000", "Vi har sendt deg en DM.", author=ACCOUNT, parent_id="c.2")
    media, page = mock_poll(graph, [
        comment("c.2", "2026-11-24T10:05:40+0000", "Samme her", replies={"data": [reply]}),
        comment("c.1", "2026-11-24T09:00:00+0000", "old, already seen"),
    ])
    events, cursor = await connector.poll("2026-11-24T10:00:00+00:00")
    assert [(e.kind, e.external_id, e.in_reply_to_external_id, e.author.is_self) for e in events] == [
        ("comment", "c.2", MEDIA, False), ("echo", "c.3", "c.2", True)]
    assert {(e.thread_external_id, e.account_id, e.public) for e in events} == {(MEDIA, ACCOUNT, True)}
    assert cursor == "2026-11-24T10:09:00+00:00"
    assert dict(media.calls.last.request.url.params) == {"fields": "id", "limit": "10"}
    assert dict(page.calls.last.request.url.params) == {
        "fields": "id,text,timestamp,from,parent_id,replies{id,text,timestamp,from,parent_id}", "limit": "50"}
    assert_authorised(page.calls.last.request)


async def test_nothing_new_keeps_the_cursor(connector, graph) -> None:
    mock_poll(graph, [comment("c.1", "2026-11-24T09:00:00+0000", "old")])
    assert await connector.poll("2026-11-24T10:00:00+00:00") == ([], "2026-11-24T10:00:00+00:00")


async def test_the_first_poll_looks_back_a_day(connector, graph) -> None:
    mock_poll(graph, [comment("c.new", "2026-11-24T09:00:00+0000", "yesterday morning"),
                      comment("c.old", "2026-11-24T07:59:59+0000", "just too old")])
    events, cursor = await connector.poll(None)
    assert [e.external_id for e in events] == ["c.new"] and cursor == "2026-11-24T09:00:00+00:00"


async def test_an_unreadable_comment_is_skipped_but_the_rest_count(connector, graph) -> None:
    mock_poll(graph, [comment("c.2", "2026-11-24T10:05:40+0000", "ok"), {"id": "c.x", "text": "no from"}])
    events, _ = await connector.poll("2026-11-24T10:00:00+00:00")
    assert [e.external_id for e in events] == ["c.2"]


@pytest.mark.parametrize("media_answer", [{"data": "nope"}, [], {"data": [{"name": "no id"}]}])
async def test_an_unreadable_page_is_transient(connector, graph, media_answer) -> None:
    graph.get(f"{V}/{ACCOUNT}/media").respond(200, json=media_answer)
    with pytest.raises(TransientError):
        await connector.poll(None)


async def test_poll_with_a_revoked_token_is_auth_failed(connector, graph) -> None:
    graph.get(f"{V}/{ACCOUNT}/media").mock(return_value=graph_error(190, 401))
    with pytest.raises(AuthFailed):
        await connector.poll(None)


# -- check -----------------------------------------------------------------------------------

async def test_check_reads_the_account(connector, graph) -> None:
    route = graph.get(f"{V}/{ACCOUNT}").respond(200, json={"id": ACCOUNT, "username": "nordicbrand"})
    await connector.check()
    assert dict(route.calls.last.request.url.params) == {"fields": "id,username"}


async def test_check_with_a_revoked_token_is_auth_failed(connector, graph) -> None:
    graph.get(f"{V}/{ACCOUNT}").mock(return_value=graph_error(190, 401))
    with pytest.raises(AuthFailed):
        await connector.check()


async def test_an_unreadable_read_is_transient(connector, graph) -> None:
    graph.get(f"{V}/{ACCOUNT}").respond(200, text="<html>maintenance</html>")
    with pytest.raises(TransientError, match="without JSON"):
        await connector.check()
