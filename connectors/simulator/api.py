"""Thin httpx calls to the simulated platform's API, mapped onto the socialcrm error tree."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
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
from socialcrm.payload import error_words

PLATFORM = "the simulated platform"
EVENTS_PATH = "/api/events"
REPLIES_PATH = "/api/replies"
ME_PATH = "/api/me"
ITEM_ACTION_PATH = "/api/items/{item_id}/{action}"
PAGE_SIZE = 100
DEFAULT_RETRY_AFTER = 30.0


async def call(http: httpx.AsyncClient, method: str, base_url: str, path: str, token: str, *,
               json: Any = None, params: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> Any:
    """One authenticated request; returns the decoded JSON body or raises a SendError."""
    with platform_errors(PLATFORM):
        response = await http.request(
            method, base_url.rstrip("/") + path, json=json, params=params,
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        )
    raise_for_status(response)
    try:
        return response.json()
    except ValueError as exc:
        raise TransientError(f"{PLATFORM} answered HTTP {response.status_code} without JSON") from exc


def raise_for_status(response: httpx.Response) -> None:
    """Map a failed status to the error the outbox and the poller know how to handle."""
    status = response.status_code
    if status < 400:
        return
    if status == 429:
        delay = retry_after(response)
        raise RateLimited(f"{PLATFORM} is rate limiting us; retry in {delay:g} s", retry_after=delay, code=status)
    if status == 401:
        raise AuthFailed(f"{PLATFORM} rejected the API token: {error_text(response)}", code=status)
    if status >= 500:
        raise TransientError(f"{PLATFORM} failed (HTTP {status}): {error_text(response)}", code=status)
    raise PermanentError(error_text(response), code=status)


def retry_after(response: httpx.Response) -> float:
    """Retry-After in seconds or as an HTTP date; a missing or garbled one means 30 s."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def error_text(response: httpx.Response) -> str:
    """The platform's own `{"error": "..."}` words, or a plain sentence when it sent none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_words(body, PLATFORM, response.status_code)


def events_params(cursor: str | None) -> dict[str, str]:
    params = {"limit": str(PAGE_SIZE)}
    if cursor is not None:
        params["after"] = cursor
    return params


def item_action_path(item_id: str, action: str) -> str:
    """Ids go in the path, so anything but URL-safe characters is escaped."""
    return ITEM_ACTION_PATH.format(item_id=quote(item_id, safe=""), action=quote(action, safe=""))
