"""Thin httpx calls to a Mastodon instance, mapped onto the socialcrm error tree (see README.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from socialcrm.errors import (
    AuthFailed,
    PermanentError,
    RateLimited,
    TransientError,
    platform_errors,
)
from socialcrm.payload import error_words

PLATFORM = "the Mastodon instance"
NOTIFICATIONS_PATH = "/api/v1/notifications"
STATUSES_PATH = "/api/v1/statuses"
STATUS_PATH = "/api/v1/statuses/{id}"
VERIFY_CREDENTIALS_PATH = "/api/v1/accounts/verify_credentials"
INSTANCE_PATH = "/api/v2/instance"
#: mention: customers writing to us; update: edits of statuses we boosted (kept only when they
#: concern us); favourite: stars on our replies. Mastodon has no notification for a reply that
#: does not mention us, nor for deletes.
NOTIFICATION_TYPES = ("mention", "update", "favourite")
PAGE_SIZE = 40                  # the documented default; max 80
#: Nothing says when the limit resets: wait out the documented window (300 calls per 5 minutes).
DEFAULT_RETRY_AFTER = 300.0

Params = list[tuple[str, str]]


async def call(http: httpx.AsyncClient, method: str, base_url: str, path: str, token: str, now: datetime, *,
               params: Params | None = None, data: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> httpx.Response:
    """One authenticated request; returns the response or raises a SendError."""
    with platform_errors(PLATFORM):
        response = await http.request(method, base_url.rstrip("/") + path, params=params, data=data,
                                      headers={"Authorization": f"Bearer {token}", **(headers or {})})
    raise_for_status(response, now)
    return response


def decode(response: httpx.Response, expected: type) -> Any:
    """The JSON body, which must be a list or an object as documented."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, expected):
        raise TransientError(f"{PLATFORM} answered HTTP {response.status_code} without the documented JSON")
    return body


def raise_for_status(response: httpx.Response, now: datetime) -> None:
    """By status code only; the words shown to the agent are the instance's own `error`."""
    status = response.status_code
    if status < 400:
        return
    if status == 429:
        delay = retry_after(response, now)
        raise RateLimited(f"{PLATFORM} is rate limiting us; retry in {delay:g} s", retry_after=delay, code=status)
    if status == 401:
        raise AuthFailed(f"{PLATFORM} rejected the access token: {error_text(response)}", code=status)
    if status >= 500:
        raise TransientError(f"{PLATFORM} failed (HTTP {status}): {error_text(response)}", code=status)
    raise PermanentError(error_text(response), code=status)


def retry_after(response: httpx.Response, now: datetime) -> float:
    """Seconds until `X-RateLimit-Reset` (an ISO 8601 time); the whole window when it is unreadable."""
    value = response.headers.get("X-RateLimit-Reset", "").strip()
    try:
        reset = datetime.fromisoformat(value)
    except ValueError:
        return DEFAULT_RETRY_AFTER
    if reset.tzinfo is None:
        return DEFAULT_RETRY_AFTER
    return max(0.0, (reset - now).total_seconds())


def error_text(response: httpx.Response) -> str:
    """The Error entity's `error`, or a plain sentence when there is none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_words(body, PLATFORM, response.status_code)


def notifications_params(cursor: str | None) -> Params:
    """min_id pages forward from the cursor: the oldest new notifications come first."""
    params = [("types[]", kind) for kind in NOTIFICATION_TYPES] + [("limit", str(PAGE_SIZE))]
    return params + [("min_id", cursor)] if cursor is not None else params


def prev_page_params(response: httpx.Response) -> Params | None:
    """The query of the `Link: <...>; rel="prev"` URL (newer items), or None when there is none.

    Only the query is used, against our own api_base_url: the token never goes to a host the
    admin did not configure, and a proxy in front of the instance keeps working.
    """
    link = response.links.get("prev", {}).get("url")
    if not link:
        return None
    params = parse_qsl(urlsplit(link).query, keep_blank_values=True)
    return params if any(key == "min_id" for key, _ in params) else None


def status_path(status_id: str) -> str:
    """Ids go in the path, so anything but URL-safe characters is escaped."""
    return STATUS_PATH.format(id=quote(status_id, safe=""))
