"""Thin httpx calls to the Telegram Bot API, mapped onto the socialcrm error tree.

Every method is `POST <api_base_url>/bot<token>/<method>` with a JSON body, answered
`{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description", "parameters"}`.
The bot token is part of the URL path, so nothing raised here may carry the URL or the
httpx exception that holds it: transport failures are re-created with the token blotted out.
"""

from __future__ import annotations

from typing import Any

import httpx

from socialcrm.errors import (
    AuthFailed,
    PermanentError,
    RateLimited,
    SendError,
    TransientError,
)

PLATFORM = "Telegram"
GET_ME = "getMe"
GET_UPDATES = "getUpdates"
SEND_MESSAGE = "sendMessage"
SET_WEBHOOK = "setWebhook"
GET_WEBHOOK_INFO = "getWebhookInfo"

#: What the connector handles; message_reaction and my_chat_member are off by default, so ask.
ALLOWED_UPDATES = ["message", "edited_message", "channel_post", "edited_channel_post",
                   "message_reaction", "my_chat_member"]
PAGE_SIZE = 100
DEFAULT_RETRY_AFTER = 30.0

CONFLICT_WORDS = ("a webhook is set for this bot; polling is not possible while it is — "
                  "use webhook mode or delete the webhook")
#: 403 is always permanent; these only pick the plain words the agent reads.
FORBIDDEN_WORDS = {
    "bot was blocked by the user": "the customer has blocked the bot",
    "bot was kicked": "the bot was removed from this chat",
    "user is deactivated": "the customer's Telegram account no longer exists",
    "bot can't initiate conversation": "the customer has never started a chat with the bot",
}


async def call(http: httpx.AsyncClient, base_url: str, token: str, method: str,
               payload: dict[str, Any] | None = None) -> Any:
    """One Bot API method; returns its `result` or raises a SendError without the token in it."""
    url = f"{base_url.rstrip('/')}/bot{token}/{method}"
    response: httpx.Response | None = None
    failure: tuple[SendError, BaseException | None] | None = None
    try:
        response = await http.post(url, json=payload or {})
    except httpx.InvalidURL:
        failure = PermanentError("api_base_url is not a valid URL"), None
    except httpx.HTTPError as exc:
        failure = transport_failure(exc, token)
    if failure is not None:  # raised outside the except block, so the original is not chained
        raise failure[0] from failure[1]
    assert response is not None
    return unwrap(response, token)


def transport_failure(exc: httpx.HTTPError, token: str) -> tuple[SendError, BaseException]:
    """A TransientError, and a copy of the httpx error without the URL (its request holds it)."""
    text = " ".join(str(exc).replace(token, "***").split())
    try:
        scrubbed: BaseException = type(exc)(text)
    except TypeError:  # an httpx error that needs more than a message; keep the words only
        scrubbed = RuntimeError(f"{type(exc).__name__}: {text}")
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{PLATFORM} did not answer in time"), scrubbed
    return TransientError(f"could not reach {PLATFORM}: {type(exc).__name__}"), scrubbed


def unwrap(response: httpx.Response, token: str = "") -> Any:
    """The `result` of an ok answer; anything else becomes the error its status and code say."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("ok") is True and "result" in body:
        return body["result"]
    if response.status_code < 400 and not (isinstance(body, dict) and body.get("ok") is False):
        raise TransientError(f"{PLATFORM} answered HTTP {response.status_code} without a result")
    raise error_for(response.status_code, body if isinstance(body, dict) else {}, token)


def error_for(status: int, body: dict[str, Any], token: str = "") -> SendError:
    """Map by error_code (the HTTP status when absent), never by the description's words alone."""
    code = body.get("error_code") if type(body.get("error_code")) is int else status
    described = body.get("description")
    description = " ".join(described.split()) if isinstance(described, str) and described.strip() else ""
    description = description.replace(token, "***") if token else description
    told = description or f"HTTP {code}"
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    if code == 429:
        delay = retry_after(parameters)
        return RateLimited(f"{PLATFORM} is rate limiting the bot; retry in {delay:g} s", retry_after=delay, code=code)
    if code in (401, 404):  # 401 for a wrong token, 404 for one Telegram cannot even route
        return AuthFailed(f"{PLATFORM} rejected the bot token ({told}); get the current token from "
                          "@BotFather and update the channel", code=code)
    if code == 403:
        return PermanentError(f"{forbidden_words(description)} ({PLATFORM}: {told})", code=code)
    if code == 409:
        return PermanentError(f"{CONFLICT_WORDS} ({PLATFORM}: {told})", code=code)
    if code >= 500:
        return TransientError(f"{PLATFORM} failed ({told})", code=code)
    migrated = parameters.get("migrate_to_chat_id")
    if type(migrated) is int:
        return PermanentError(f"this group became a supergroup with chat id {migrated}; "
                              f"answer the customer there ({PLATFORM}: {told})", code=code)
    return PermanentError(description or f"{PLATFORM} refused the request (HTTP {code})", code=code)


def forbidden_words(description: str) -> str:
    lowered = description.lower()
    for phrase, words in FORBIDDEN_WORDS.items():
        if phrase in lowered:
            return words
    return "Telegram does not let the bot write in this chat"


def retry_after(parameters: dict[str, Any]) -> float:
    """`parameters.retry_after` in seconds; a missing or garbled one means 30 s."""
    value = parameters.get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return DEFAULT_RETRY_AFTER


def updates_payload(offset: int | None) -> dict[str, Any]:
    """getUpdates: short polling (the scheduler owns the interval), a full page, our update types."""
    payload: dict[str, Any] = {"limit": PAGE_SIZE, "timeout": 0, "allowed_updates": ALLOWED_UPDATES}
    if offset is not None:
        payload["offset"] = offset
    return payload


def webhook_payload(url: str, secret_token: str) -> dict[str, Any]:
    return {"url": url, "secret_token": secret_token, "allowed_updates": ALLOWED_UPDATES,
            "drop_pending_updates": False}


def reply_payload(chat_id: int, text: str, reply_to: tuple[int, int] | None) -> dict[str, Any]:
    """sendMessage as plain text (no parse_mode, so no entity parsing changes its length)."""
    payload: dict[str, Any] = {"chat_id": chat_id, "text": text}
    if reply_to is not None:
        reply_chat, message_id = reply_to
        parameters: dict[str, Any] = {"message_id": message_id, "allow_sending_without_reply": True}
        if reply_chat != chat_id:  # Telegram only allows sending without the reply in the same chat
            parameters = {"message_id": message_id, "chat_id": reply_chat}
        payload["reply_parameters"] = parameters
    return payload
