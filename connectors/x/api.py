"""Thin httpx calls to the X API v2 and the mapping of its errors onto the socialcrm error tree.

Errors are mapped by HTTP status, the v2 problem `type` and the v1.1 `errors[].code`, never by
message text; X's own `detail` is kept in the message so the agent (and the channel page) can
read why X refused, e.g. an access tier that does not include an endpoint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from socialcrm.errors import (
    AuthFailed,
    PermanentError,
    RateLimited,
    TransientError,
    platform_errors,
)

PLATFORM = "X"
MENTIONS_PATH = "/2/users/{user_id}/mentions"
TWEETS_PATH = "/2/tweets"
DM_PATH = "/2/dm_conversations/with/{participant_id}/messages"
ME_PATH = "/2/users/me"
USER_PATH = "/2/users/{user_id}"
DEFAULT_RETRY_AFTER = 60.0
PROBLEMS = "https://api.x.com/2/problems/"

#: v1.1 codes (still sent by some endpoints) worth plain words for the agent.
PLAIN_WORDS = {
    186: "X refused: the post is too long.",
    187: "X refused: this account already posted exactly this text (if an earlier attempt timed out, "
         "it probably went out).",
    385: "X refused: the post being answered was deleted or is not visible to this account.",
    433: "X refused: the author limited who can reply to that post.",
    349: "X refused: this person does not accept direct messages from this account.",
    150: "X refused: this person does not accept direct messages from accounts they do not follow.",
    226: "X refused: it looked automated to X; nothing was posted.",
}
AUTH_CODES = {32, 89, 99, 135, 215, 220}
RATE_LIMIT_CODES = {88, 185}
TRANSIENT_CODES = {130, 131}
#: v2 problem types (lower-cased: X writes the host as api.X.com on some pages).
AUTH_PROBLEMS = {"unsupported-authentication"}
RATE_LIMIT_PROBLEMS = {"usage-capped"}
TIER_PROBLEMS = {"client-forbidden"}


async def call(http: httpx.AsyncClient, method: str, url: str, token: str, *, now: datetime,
               params: dict[str, str] | None = None, json: Any = None) -> Any:
    """One request with `Authorization: Bearer <token>`; the decoded JSON or a SendError."""
    with platform_errors(PLATFORM):
        response = await http.request(method, url, params=params, json=json,
                                      headers={"Authorization": f"Bearer {token}"})
    raise_for_error(response, now)
    try:
        return response.json()
    except ValueError as exc:
        raise TransientError(f"{PLATFORM} answered HTTP {response.status_code} without JSON") from exc


def raise_for_error(response: httpx.Response, now: datetime) -> None:
    """Map a failed answer to the error the outbox and the poller know how to handle."""
    status = response.status_code
    if status < 400:
        return
    body = _body(response)
    code, problem, reason = error_code(body), problem_type(body), error_text(body)
    if status == 429 or code in RATE_LIMIT_CODES or problem in RATE_LIMIT_PROBLEMS:
        delay = retry_after(response, now)
        raise RateLimited(f"{PLATFORM} rate limit: {reason or 'too many requests'}; retry in {delay:g} s",
                          retry_after=delay, code=code or status)
    if status == 401 or code in AUTH_CODES or problem in AUTH_PROBLEMS:
        raise AuthFailed(f"{PLATFORM} rejected the token: {reason or f'HTTP {status}'}", code=code or status)
    if status >= 500 or code in TRANSIENT_CODES:
        raise TransientError(f"{PLATFORM} failed (HTTP {status}): {reason or 'no details'}", code=code or status)
    raise PermanentError(refusal(status, code, problem, reason), code=code or status)


def refusal(status: int, code: int | None, problem: str | None, reason: str) -> str:
    """Why X refused, in plain words: known codes by their meaning, the rest in X's own words."""
    if code in PLAIN_WORDS:
        return PLAIN_WORDS[code]
    if problem in TIER_PROBLEMS:
        return f"X refused: this app's X API access does not include this action ({reason or problem})."
    if status == 404:
        return f"X refused: not found ({reason or 'the post or user does not exist'})."
    return f"X refused: {reason or f'HTTP {status}'}"


def retry_after(response: httpx.Response, now: datetime) -> float:
    """Seconds until `x-rate-limit-reset` (epoch seconds); 60 s when missing or garbled."""
    value = response.headers.get("x-rate-limit-reset", "").strip()
    if not value.isdigit():
        return DEFAULT_RETRY_AFTER
    return max(0.0, int(value) - now.timestamp())


def error_code(body: Any) -> int | None:
    """The first v1.1 `errors[].code`, if the body has one."""
    for error in _errors(body):
        if type(error.get("code")) is int:
            return error["code"]
    return None


def problem_type(body: Any) -> str | None:
    """The v2 problem type's last path segment (`client-forbidden`), or None for about:blank."""
    kind = body.get("type") if isinstance(body, dict) else None
    if not isinstance(kind, str) or not kind.lower().startswith(PROBLEMS):
        return None
    return kind.lower().removeprefix(PROBLEMS).strip("/") or None


def error_text(body: Any) -> str:
    """X's own words: v2 `detail` (or `title`), else the first v1.1 `errors[].message`; one line."""
    texts: list[Any] = []
    if isinstance(body, dict):
        texts += [body.get("detail"), body.get("title")]
    texts += [error.get("message") or error.get("detail") for error in _errors(body)]
    for text in texts:
        if isinstance(text, str) and text.strip():
            return " ".join(text.split())[:300]
    return ""


def _errors(body: Any) -> list[dict[str, Any]]:
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def url(base_url: str, path: str, **ids: str) -> str:
    """`base_url` + `path` with its ids escaped (they come from payloads, so never trusted)."""
    return base_url.rstrip("/") + path.format(**{k: quote(v, safe="") for k, v in ids.items()})
