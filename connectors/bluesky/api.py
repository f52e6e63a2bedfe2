"""Thin XRPC calls to a Bluesky PDS (or the bsky.social entryway), mapped onto the socialcrm error tree.

XRPC errors are `{"error": "<Name>", "message": "..."}` (atproto.com/specs/xrpc). We map by status
and error *name*, never by message text. Tokens are passed in, used in one header and forgotten.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import httpx

from socialcrm.errors import (
    AuthFailed,
    PermanentError,
    RateLimited,
    TransientError,
    platform_errors,
)

PLATFORM = "Bluesky"
CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
LIST_NOTIFICATIONS = "app.bsky.notification.listNotifications"
GET_POSTS = "app.bsky.feed.getPosts"
RESOLVE_HANDLE = "com.atproto.identity.resolveHandle"
CREATE_RECORD = "com.atproto.repo.createRecord"
POST_COLLECTION = "app.bsky.feed.post"
PAGE_SIZE = 50
DEFAULT_RETRY_AFTER = 60.0
#: `ratelimit-reset` above this is a UNIX time (what the Bluesky PDS sends); below it, seconds to wait
#: (what the IETF RateLimit-header draft linked from the rate-limit docs defines).
EPOCH_THRESHOLD = 1_000_000_000
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
MAX_MESSAGE = 300


class TokenRejected(AuthFailed):
    """The server refused the bearer token (400 ExpiredToken/InvalidToken, or 401).

    An AuthFailed, so that if it ever escapes the session keeper the core still pauses the channel.
    """

    def __init__(self, message: str, *, expired: bool, code: str | int | None = None) -> None:
        super().__init__(message, code=code)
        self.expired = expired


async def call(http: httpx.AsyncClient, method: str, base_url: str, nsid: str, *, now: datetime,
               token: str | None = None, params: dict[str, str] | None = None, json: Any = None) -> Any:
    """One XRPC request; returns the decoded JSON body or raises a SendError."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with platform_errors(PLATFORM):
        response = await http.request(method, xrpc_url(base_url, nsid), params=params, json=json, headers=headers)
    raise_for_status(response, now)
    try:
        return response.json()
    except ValueError as exc:
        raise TransientError(f"{PLATFORM} answered HTTP {response.status_code} without JSON") from exc


def xrpc_url(base_url: str, nsid: str) -> str:
    return f"{base_url.rstrip('/')}/xrpc/{nsid}"


def raise_for_status(response: httpx.Response, now: datetime) -> None:
    """Map a failed status (and the XRPC error name) to the error the outbox and poller handle."""
    status = response.status_code
    if status < 400:
        return
    name, message = error_body(response)
    code: str | int = name or status
    if status == 429:
        delay = retry_after(response.headers, now)
        raise RateLimited(f"{PLATFORM} is rate limiting us; retry in {delay:g} s", retry_after=delay, code=code)
    if status == 401 or name in TOKEN_ERRORS:
        raise TokenRejected(f"{PLATFORM} refused the session ({name or f'HTTP {status}'}: {message or 'no reason given'})",
                            expired=name == "ExpiredToken", code=code)
    if status >= 500:
        raise TransientError(f"{PLATFORM} failed (HTTP {status}): {message or name or 'no reason given'}", code=code)
    raise PermanentError(refusal(status, name, message), code=code)


def refusal(status: int, name: str | None, message: str | None) -> str:
    """The platform's own words for the agent, or a plain sentence when it sent none."""
    if message:
        return f"{PLATFORM} refused the request: {message}"
    return f"{PLATFORM} refused the request ({name or f'HTTP {status}'})"


def error_body(response: httpx.Response) -> tuple[str | None, str | None]:
    """`error` and `message` of an XRPC error body; None for what is missing (proxies send HTML)."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    return _short(body.get("error")), _short(body.get("message"))


def _short(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def retry_after(headers: httpx.Headers, now: datetime) -> float:
    """Seconds to wait: `ratelimit-reset` (UNIX seconds), else Retry-After, else 60 s."""
    reset = _number(headers.get("ratelimit-reset"))
    if reset is not None:
        delay = reset - now.timestamp() if reset > EPOCH_THRESHOLD else reset
        return max(0.0, delay)
    seconds = _number(headers.get("retry-after"))
    return max(0.0, seconds) if seconds is not None else DEFAULT_RETRY_AFTER


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def list_params(api_cursor: str | None) -> dict[str, str]:
    params = {"limit": str(PAGE_SIZE)}
    if api_cursor:
        params["cursor"] = api_cursor
    return params
