"""The Telegram connector's Bot API calls through respx: exact requests, errors mapped, no token leaks."""

from __future__ import annotations

import argparse
import json
import logging
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx
from harness import load_fixture

from connectors.telegram import TelegramConnector
from socialcrm.cli_tools import add_commands
from socialcrm.connector import (
    AuthFailed,
    ConnectorError,
    OutboundReply,
    PermanentError,
    RateLimited,
    Sent,
    TransientError,
)

BASE = "https://tg.test"
BOT_TOKEN = "7301234567:AAE3bq7Xb_fake-test-token-8s0dQkL2mZ1"
SECRET = "s3cret_hook-42"
BOT = f"/bot{BOT_TOKEN}"
SUPER = -1001987654321
REPLY = OutboundReply(text="Hei Ingrid! Pakken kommer i morgen.", public=False, thread_external_id="5012345678",
                      recipient_external_id="5012345678", in_reply_to_external_id="5012345678:42",
                      idempotency_key="reply-17")
ALLOWED = ["message", "edited_message", "channel_post", "edited_channel_post", "message_reaction", "my_chat_member"]


@pytest.fixture
async def connector() -> AsyncIterator[TelegramConnector]:
    settings = {"bot_token": BOT_TOKEN, "secret_token": SECRET, "api_base_url": BASE + "/"}
    async with httpx.AsyncClient() as http:
        yield TelegramConnector.from_settings(settings, http)


@pytest.fixture
def telegram() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def ok(result: object) -> dict:
    return {"ok": True, "result": result}


def failed(code: int, description: str, **parameters: object) -> httpx.Response:
    body: dict = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return httpx.Response(code, json=body)


def updates(*names: str) -> list[dict]:
    return [json.loads(load_fixture("telegram", name)) for name in names]


def sent_message(chat: dict, message_id: int, date: int, text: str) -> dict:
    return {"message_id": message_id, "from": {"id": 7301234567, "is_bot": True, "first_name": "Nordlys Support"},
            "chat": chat, "date": date, "text": text}


# -- poll -------------------------------------------------------------------------------------------

async def test_poll_sends_the_offset_and_returns_the_cursor_after_the_highest(connector, telegram) -> None:
    page = updates("message__private_text", "message__group", "message_reaction__add")
    route = telegram.post(f"{BOT}/getUpdates").respond(200, json=ok(page))
    events, cursor = await connector.poll("861000001")
    assert [e.external_id for e in events] == ["5012345678:42", "-4012345678:310",
                                               f"{SUPER}:1207:react:7034567890:1795512180:❤"]
    assert cursor == "861000011"  # the last update_id + 1: the next poll confirms these
    assert json.loads(route.calls.last.request.content) == {
        "offset": 861000001, "limit": 100, "timeout": 0, "allowed_updates": ALLOWED}


async def test_first_poll_sends_no_offset(connector, telegram) -> None:
    route = telegram.post(f"{BOT}/getUpdates").respond(200, json=ok(updates("message__voice")))
    events, cursor = await connector.poll(None)
    assert cursor == "861000010" and [e.kind for e in events] == ["message"]
    assert "offset" not in json.loads(route.calls.last.request.content)


async def test_empty_result_keeps_the_cursor(connector, telegram) -> None:
    telegram.post(f"{BOT}/getUpdates").respond(200, json=ok([]))
    assert await connector.poll("861000042") == ([], "861000042")
    assert await connector.poll(None) == ([], None)


async def test_events_come_in_update_id_order_whatever_order_the_page_has(connector, telegram) -> None:
    page = updates("edited_message__text", "message__private_text")  # 861000005 listed before 861000001
    telegram.post(f"{BOT}/getUpdates").respond(200, json=ok(page))
    events, cursor = await connector.poll(None)
    assert [e.kind for e in events] == ["message", "edit"] and cursor == "861000006"


async def test_unhandled_and_malformed_updates_are_skipped_but_confirmed(connector, telegram, caplog) -> None:
    page = updates("callback_query__button", "malformed__message_without_chat", "my_chat_member__kicked")
    page.append({"no": "update_id"})
    telegram.post(f"{BOT}/getUpdates").respond(200, json=ok(page))
    with caplog.at_level(logging.WARNING):
        events, cursor = await connector.poll("861000013")
    assert [e.detail for e in events] == [{"reachable": False}]
    assert cursor == "861000019"  # past the malformed 861000018: it would never parse on a retry
    assert "861000018" in caplog.text and "result[3]" in caplog.text


async def test_a_restart_between_polls_neither_loses_nor_duplicates(connector, telegram) -> None:
    """The core stores the cursor only after commit: polling the old cursor again gets the same
    updates (Telegram keeps them until an offset above them confirms), so nothing is lost, and
    their ids are the same, so the database's unique key drops the repeats."""
    route = telegram.post(f"{BOT}/getUpdates").mock(side_effect=[
        httpx.Response(200, json=ok(updates("message__photo", "message__sticker"))),
        httpx.Response(200, json=ok(updates("message__photo", "message__sticker", "message__document"))),
        httpx.Response(200, json=ok([])),
    ])
    first, cursor = await connector.poll("861000006")          # crash before the commit ...
    again, cursor = await connector.poll("861000006")          # ... so the old cursor is asked again
    assert [e.external_id for e in again][:2] == [e.external_id for e in first]
    assert cursor == "861000009"
    assert await connector.poll(cursor) == ([], "861000009")
    offsets = [json.loads(call.request.content).get("offset") for call in route.calls]
    assert offsets == [861000006, 861000006, 861000009]


async def test_409_means_a_webhook_is_set_and_says_so(connector, telegram) -> None:
    telegram.post(f"{BOT}/getUpdates").mock(return_value=failed(
        409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"))
    with pytest.raises(PermanentError) as info:
        await connector.poll("1")
    assert str(info.value).startswith("a webhook is set for this bot; polling is not possible while it is — "
                                      "use webhook mode or delete the webhook")
    assert info.value.code == 409


async def test_poll_rate_limited_waits_retry_after(connector, telegram) -> None:
    telegram.post(f"{BOT}/getUpdates").mock(return_value=failed(429, "Too Many Requests: retry after 17",
                                                                   retry_after=17))
    with pytest.raises(RateLimited) as info:
        await connector.poll("1")
    assert info.value.retry_after == 17.0 and info.value.code == 429


@pytest.mark.parametrize("answer", [ok({"not": "a list"}), {"ok": True}, {"result": []}])
async def test_unreadable_page_is_transient(connector, telegram, answer) -> None:
    telegram.post(f"{BOT}/getUpdates").respond(200, json=answer)
    with pytest.raises(TransientError):
        await connector.poll("1")


async def test_a_garbled_cursor_is_permanent_without_calling(connector, telegram) -> None:
    route = telegram.post(f"{BOT}/getUpdates").respond(200, json=ok([]))
    with pytest.raises(PermanentError, match="not a Telegram update id"):
        await connector.poll("next-page")
    assert not route.called


# -- send -------------------------------------------------------------------------------------------

async def test_send_replies_with_reply_parameters_and_returns_sent(connector, telegram) -> None:
    chat = {"id": 5012345678, "first_name": "Ingrid", "type": "private"}
    route = telegram.post(f"{BOT}/sendMessage").respond(200, json=ok(sent_message(chat, 46, 1795512900, REPLY.text)))
    assert await connector.send(REPLY) == Sent("5012345678:46", datetime(2026, 11, 24, 9, 35, tzinfo=UTC))
    request = route.calls.last.request
    assert json.loads(request.content) == {
        "chat_id": 5012345678, "text": "Hei Ingrid! Pakken kommer i morgen.",
        "reply_parameters": {"message_id": 42, "allow_sending_without_reply": True}}
    assert request.url.path == f"{BOT}/sendMessage" and request.headers["content-type"] == "application/json"


async def test_public_reply_in_a_supergroup_and_a_message_without_reply(connector, telegram) -> None:
    chat = {"id": SUPER, "title": "Nordlys Community", "type": "supergroup"}
    route = telegram.post(f"{BOT}/sendMessage").respond(200, json=ok(sent_message(chat, 1207, 1795512900, "x")))
    public = OutboundReply(text="x", public=True, thread_external_id=str(SUPER), in_reply_to_external_id=f"{SUPER}:1206")
    assert (await connector.send(public)).external_id == f"{SUPER}:1207"
    assert json.loads(route.calls.last.request.content)["reply_parameters"]["message_id"] == 1206
    await connector.send(OutboundReply(text="x", public=False, thread_external_id="5012345678"))
    assert "reply_parameters" not in json.loads(route.calls.last.request.content)


@pytest.mark.parametrize(("response", "error", "words"), [
    (failed(403, "Forbidden: bot was blocked by the user"), PermanentError, "the customer has blocked the bot"),
    (failed(403, "Forbidden: bot was kicked from the supergroup chat"), PermanentError, "removed from this chat"),
    (failed(400, "Bad Request: chat not found"), PermanentError, "Bad Request: chat not found"),
    (failed(400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-1001234),
     PermanentError, "became a supergroup with chat id -1001234"),
    (failed(429, "Too Many Requests: retry after 5", retry_after=5), RateLimited, "retry in 5 s"),
    (failed(401, "Unauthorized"), AuthFailed, "rejected the bot token (Unauthorized)"),
    (failed(404, "Not Found"), AuthFailed, "rejected the bot token (Not Found)"),
    (failed(500, "Internal Server Error"), TransientError, "Telegram failed (Internal Server Error)"),
    (httpx.Response(502, text="<html>Bad Gateway</html>"), TransientError, "Telegram failed (HTTP 502)"),
])
async def test_send_maps_errors_by_code(connector, telegram, response, error, words) -> None:
    telegram.post(f"{BOT}/sendMessage").mock(return_value=response)
    with pytest.raises(error) as info:
        await connector.send(REPLY)
    assert type(info.value) is error and words in str(info.value)
    assert info.value.code == response.status_code and BOT_TOKEN not in str(info.value)


async def test_blocked_reads_as_plain_words_first(connector, telegram) -> None:
    telegram.post(f"{BOT}/sendMessage").mock(return_value=failed(403, "Forbidden: bot was blocked by the user"))
    with pytest.raises(PermanentError) as info:
        await connector.send(REPLY)
    assert str(info.value) == "the customer has blocked the bot (Telegram: Forbidden: bot was blocked by the user)"


@pytest.mark.parametrize(("parameters", "expected"), [({"retry_after": 3}, 3.0), ({}, 30.0),
                                                      ({"retry_after": "soon"}, 30.0), ({"retry_after": -1}, 30.0)])
async def test_rate_limit_reads_parameters_retry_after(connector, telegram, parameters, expected) -> None:
    telegram.post(f"{BOT}/sendMessage").mock(return_value=failed(429, "Too Many Requests", **parameters))
    with pytest.raises(RateLimited) as info:
        await connector.send(REPLY)
    assert info.value.retry_after == expected


async def test_5xx_then_success(connector, telegram) -> None:
    chat = {"id": 5012345678, "type": "private", "first_name": "Ingrid"}
    telegram.post(f"{BOT}/sendMessage").mock(side_effect=[
        failed(502, "Bad Gateway"), httpx.Response(200, json=ok(sent_message(chat, 47, 1795512900, "x")))])
    with pytest.raises(TransientError):
        await connector.send(REPLY)
    assert (await connector.send(REPLY)).external_id == "5012345678:47"


async def test_accepted_but_unreadable_is_not_retried(connector, telegram) -> None:
    telegram.post(f"{BOT}/sendMessage").respond(200, json=ok(True))
    with pytest.raises(PermanentError, match="check the chat before sending it again"):
        await connector.send(REPLY)


@pytest.mark.parametrize(("reply", "words"), [
    (OutboundReply(text="x", public=False, thread_external_id="t1"), "not a Telegram chat id"),
    (OutboundReply(text="x", public=False, thread_external_id="1", in_reply_to_external_id="1:2:edit:3"),
     "not a Telegram message to reply to"),
    (OutboundReply(text="x", public=False, thread_external_id="1", mode="template"), "has no templates"),
])
async def test_replies_telegram_cannot_take_fail_without_a_call(connector, telegram, reply, words) -> None:
    route = telegram.post(f"{BOT}/sendMessage").respond(200, json=ok({}))
    with pytest.raises(PermanentError, match=words):
        await connector.send(reply)
    assert not route.called


# -- setWebhook, getWebhookInfo, getMe ----------------------------------------------------------------

async def test_set_webhook_sends_the_secret_and_the_update_types(connector, telegram) -> None:
    route = telegram.post(f"{BOT}/setWebhook").respond(200, json={"ok": True, "result": True,
                                                                  "description": "Webhook was set"})
    assert await connector.set_webhook("https://inbox.example/webhooks/telegram/7") is None
    assert json.loads(route.calls.last.request.content) == {
        "url": "https://inbox.example/webhooks/telegram/7", "secret_token": SECRET,
        "allowed_updates": ALLOWED, "drop_pending_updates": False}


async def test_set_webhook_refused_is_permanent(connector, telegram) -> None:
    telegram.post(f"{BOT}/setWebhook").mock(return_value=failed(400, "Bad Request: bad webhook: HTTPS url must be provided for webhook"))
    with pytest.raises(PermanentError, match="HTTPS url must be provided"):
        await connector.set_webhook("http://inbox.example/webhooks/telegram/7")


async def test_webhook_info_returns_telegrams_answer(connector, telegram) -> None:
    info = {"url": "https://inbox.example/webhooks/telegram/7", "has_custom_certificate": False,
            "pending_update_count": 3, "last_error_date": 1795512000, "last_error_message": "Wrong response from the webhook: 502 Bad Gateway",
            "max_connections": 40, "allowed_updates": ALLOWED}
    route = telegram.post(f"{BOT}/getWebhookInfo").respond(200, json=ok(info))
    assert await connector.webhook_info() == info and route.called


async def test_check_passes_and_a_bad_token_is_auth_failed(connector, telegram) -> None:
    telegram.post(f"{BOT}/getMe").mock(side_effect=[
        httpx.Response(200, json=ok({"id": 7301234567, "is_bot": True, "first_name": "Nordlys Support"})),
        failed(401, "Unauthorized")])
    await connector.check()
    with pytest.raises(AuthFailed):
        await connector.check()


# -- transport errors and the token ----------------------------------------------------------------

TRANSPORT_ERRORS = [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.PoolTimeout, httpx.ConnectError,
                    httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ProxyError]
CALLS = {
    "send": (lambda c: c.send(REPLY), "sendMessage"),
    "poll": (lambda c: c.poll("5"), "getUpdates"),
    "check": (lambda c: c.check(), "getMe"),
    "set_webhook": (lambda c: c.set_webhook("https://inbox.example/w"), "setWebhook"),
    "webhook_info": (lambda c: c.webhook_info(), "getWebhookInfo"),
}


def leaky(exc_type: type[httpx.HTTPError]):
    """A transport error whose message names the URL, token and all, as some httpx errors do."""
    def raise_it(request: httpx.Request) -> None:
        raise exc_type(f"failed for {request.url}", request=request)
    return raise_it


@pytest.mark.parametrize("exc", TRANSPORT_ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("call", sorted(CALLS))
async def test_transport_errors_are_transient_and_never_carry_the_token(connector, telegram, call, exc) -> None:
    invoke, method = CALLS[call]
    telegram.post(f"{BOT}/{method}").mock(side_effect=leaky(exc))
    with pytest.raises(TransientError) as info:
        await invoke(connector)
    assert isinstance(info.value.__cause__, exc)
    everything = "".join(traceback.format_exception(info.value))
    assert BOT_TOKEN not in everything and "AAE3bq7Xb" not in everything
    assert BOT_TOKEN not in repr(info.value.__cause__.args) and info.value.__context__ is None


async def test_timeout_reads_as_plain_words(connector, telegram) -> None:
    telegram.post(f"{BOT}/sendMessage").mock(side_effect=httpx.ConnectTimeout)
    with pytest.raises(TransientError, match="Telegram did not answer in time"):
        await connector.send(REPLY)


async def test_no_error_carries_the_token(connector, telegram) -> None:
    """Every error path at once: the token is in every request URL and in no raised message."""
    telegram.post(f"{BOT}/sendMessage").mock(side_effect=[
        failed(401, f"Unauthorized {BOT_TOKEN}"), failed(400, "Bad Request"), failed(500, ""),
        httpx.Response(200, text="not json"), httpx.ConnectError(f"no route to {BASE}{BOT}/sendMessage")])
    for _ in range(5):
        with pytest.raises(ConnectorError) as info:
            await connector.send(REPLY)
        assert "AAE3bq7Xb" not in "".join(traceback.format_exception(info.value))


# -- socialcrm poll-once --------------------------------------------------------------------------------

def poll_once(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["poll-once", "telegram", "--setting", f"bot_token={BOT_TOKEN}",
                              "--setting", f"secret_token={SECRET}", "--setting", f"api_base_url={BASE}", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_poll_once_prints_events_and_the_cursor(capsys) -> None:
    with respx.mock(base_url=BASE) as platform:
        route = platform.post(f"{BOT}/getUpdates").respond(200, json=ok(updates("message__photo", "my_chat_member__member")))
        code, out, err = poll_once(["--cursor", "861000006"], capsys)
    assert (code, err) == (0, "")
    page = json.loads(out)
    assert page["cursor"] == "861000015"
    assert [(e["kind"], e["external_id"]) for e in page["events"]] == [
        ("message", "6023456789:17"), ("status", "5012345678:my_chat_member:1795512420:member")]
    assert page["events"][0]["attachments"] == [{"kind": "image", "url": None, "mime_type": None,
                                                 "name": "telegram-file:AgACAgQAAxkBAAMRZ0Ph-large"}]
    assert json.loads(route.calls.last.request.content)["offset"] == 861000006
    assert BOT_TOKEN not in out


def test_poll_once_with_a_webhook_set_exits_2_with_the_explanation(capsys) -> None:
    with respx.mock(base_url=BASE) as platform:
        platform.post(f"{BOT}/getUpdates").mock(return_value=failed(409, "Conflict: can't use getUpdates method while webhook is active"))
        code, out, err = poll_once([], capsys)
    assert (code, out) == (2, "") and "a webhook is set for this bot" in err and err.count("\n") == 1


def test_poll_once_rate_limited_exits_3(capsys) -> None:
    with respx.mock(base_url=BASE) as platform:
        platform.post(f"{BOT}/getUpdates").mock(return_value=failed(429, "Too Many Requests: retry after 42", retry_after=42))
        code, out, err = poll_once([], capsys)
    assert (code, out) == (3, "") and "retry after 42 s" in err and BOT_TOKEN not in err
