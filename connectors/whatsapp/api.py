"""Thin Cloud API calls (Graph API) and the mapping of WhatsApp error codes onto the socialcrm tree.

Every request carries the token as `Authorization: Bearer`, as the Cloud API documents it, never
as an `access_token` query parameter: a URL ends up in proxy logs and exception reprs.
Errors are mapped by `error.code`, never by message text; WhatsApp's own codes are handled
here and everything else goes to the shared Graph mapping in `connectors.meta_common`.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from connectors.meta_common import raise_for_graph_error
from connectors.meta_common.graph import USAGE_HEADERS
from socialcrm.errors import (
    PermanentError,
    RateLimited,
    TransientError,
    platform_errors,
)

PLATFORM = "WhatsApp"
MESSAGES_PATH = "/{version}/{phone_number_id}/messages"
PHONE_NUMBER_PATH = "/{version}/{phone_number_id}"

#: Pair rate limit: "1 message every 6 seconds" from one business number to one user. The core
#: holds the whole channel's queue on RateLimited, so we wait one refill, not minutes.
PAIR_RATE_LIMIT = 131056
PAIR_RATE_WAIT = 6.0
#: Throughput: more than the number's messages per second. Meta answers it "until you are within
#: your allowed level again", i.e. within a second; a Retry-After header, when sent, is obeyed,
#: and usage headers, when sent, are read as for any Graph throttling error.
THROUGHPUT_LIMIT = 130429
THROUGHPUT_WAIT = 1.0
#: "Something went wrong": Meta's catch-all, documented as temporary (HTTP 500 usually).
TRANSIENT_CODES = {131000}
#: WhatsApp's own permanent failures, in words an agent can act on (send errors and statuses).
PLAIN_WORDS: dict[int, str] = {
    131047: "More than 24 hours have passed since the customer last wrote: only an approved template can be sent.",
    131026: "WhatsApp could not deliver the message (the number may not use WhatsApp, "
            "or the customer's app must be updated or has not accepted the terms).",
    131051: "The customer sent a message type WhatsApp does not pass on to businesses.",
    131060: "WhatsApp did not pass this message on: it is not available to businesses.",
}
#: A business-scoped user id (BSUID), e.g. "NO.1502576394655843", is sent as `recipient`;
#: a phone number (wa_id) as `to`.
_BSUID = re.compile(r"^[A-Z]{2}\.")


async def call(http: httpx.AsyncClient, method: str, url: str, token: str, *, json: Any = None) -> Any:
    """One authenticated request; the decoded JSON body, or a SendError."""
    with platform_errors(PLATFORM):
        response = await http.request(method, url, json=json, headers={"Authorization": f"Bearer {token}"})
    raise_for_error(response)
    try:
        return response.json()
    except ValueError:
        return {}  # a success without a readable body: the caller decides what it lacks


def raise_for_error(response: httpx.Response) -> None:
    """WhatsApp's codes first; the Graph codes (190, 4, 80007, 130429, 10, 200, 100...) after."""
    if response.status_code < 400:
        return
    code = error_code(response)
    if code == PAIR_RATE_LIMIT:
        raise RateLimited(f"{PLATFORM}: too many messages to this customer in a short time; "
                          f"retrying in {PAIR_RATE_WAIT:g} s", retry_after=PAIR_RATE_WAIT, code=code)
    if code == THROUGHPUT_LIMIT and not any(name in response.headers for name in USAGE_HEADERS):
        wait = max(THROUGHPUT_WAIT, retry_after_header(response))
        raise RateLimited(f"{PLATFORM}: more messages per second than this number may send; "
                          f"retrying in {wait:g} s", retry_after=wait, code=code)
    if code in TRANSIENT_CODES:
        raise TransientError(f"{PLATFORM} failed for an unknown reason ({code}); retrying", code=code)
    if code in PLAIN_WORDS and response.status_code < 500:
        raise PermanentError(PLAIN_WORDS[code], code=code)
    raise_for_graph_error(response, PLATFORM)


def retry_after_header(response: httpx.Response) -> float:
    """Seconds a Retry-After header asks for (a number of seconds), 0 when there is none."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return 0.0


def error_code(response: httpx.Response) -> int | None:
    """`error.code` of a Graph error body, or None when there is none."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    code = error.get("code") if isinstance(error, dict) else None
    return code if type(code) is int else None


# -- request bodies ---------------------------------------------------------------------

def addressee(recipient: str) -> dict[str, str]:
    """`to` for a phone number, `recipient` for a business-scoped user id."""
    return {"recipient": recipient} if _BSUID.match(recipient) else {"to": recipient}


def text_body(recipient: str, text: str, in_reply_to: str | None) -> dict[str, Any]:
    """A text message; `context` quotes the message it answers."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            **addressee(recipient), "type": "text", "text": {"body": text}}
    if in_reply_to:
        body["context"] = {"message_id": in_reply_to}
    return body


def template_body(recipient: str, name: str, language: str, parameters: list[str]) -> dict[str, Any]:
    """An approved template; positional body parameters fill {{1}}, {{2}}, ..."""
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if parameters:
        template["components"] = [{"type": "body",
                                   "parameters": [{"type": "text", "text": p} for p in parameters]}]
    return {"messaging_product": "whatsapp", "recipient_type": "individual", **addressee(recipient),
            "type": "template", "template": template}


def sent_message_id(answer: Any) -> str:
    """`messages[0].id` of a send answer. Without one the message may still have gone out, and
    the Cloud API has no idempotency key: a retry could send it twice, so it is not retried."""
    messages = answer.get("messages") if isinstance(answer, dict) else None
    first = messages[0] if isinstance(messages, list) and messages else None
    message_id = first.get("id") if isinstance(first, dict) else None
    if isinstance(message_id, str) and message_id:
        return message_id
    raise PermanentError(f"{PLATFORM} accepted the message without saying its id: it may have been "
                         f"delivered, check the customer's chat before sending it again")
