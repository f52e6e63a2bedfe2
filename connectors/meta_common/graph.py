"""Thin Graph API calls and the mapping of Graph error codes onto the socialcrm error tree.

Errors are mapped by `error.code` (and `error_subcode`), never by message text: messages change
and are translated, codes are documented. The token travels in an `Authorization: Bearer`
header (Graph accepts it there as well as in `access_token`), so it never lands in a URL, a
proxy log or an exception's repr.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from socialcrm.errors import (
    AuthFailed,
    PermanentError,
    RateLimited,
    TransientError,
    platform_errors,
)

DEFAULT_VERSION = "v24.0"
#: The newest Graph version in Meta's changelog when this was written (released 2026-07-29).
CURRENT_VERSION = "v26.0"
#: Throttling: app (4), user (17), page (32), "calls to this api have exceeded the rate limit"
#: (613), Instagram/Messenger rate (80007), WhatsApp throughput (130429) and pair rate (131056).
RATE_LIMIT_CODES = {4, 17, 32, 613, 80007, 130429, 131056}
AUTH_CODES = {190, 102}
#: Permanent failures worth saying in plain words to the agent.
PLAIN_WORDS = {
    10: "The page has not granted this app the permission to do that.",
    200: "The app lacks the permission to do that on this page.",
    230: "The app lacks the permission to do that on this page.",
    551: "This person is not available right now (they may have blocked the page).",
    10900: "This activity has already been answered.",
    10903: "This activity cannot be replied to.",
    131047: "More than 24 hours have passed since the customer last wrote: only a template can be sent.",
    131026: "The message could not be delivered (the number may not be on WhatsApp, or has not accepted the terms).",
    100: "The platform rejected the request as invalid.",
}
#: Where the subcode says more than the code (Messenger "Common Error Codes").
PLAIN_SUBCODE_WORDS = {
    (10, 2018278): "The customer last wrote too long ago: this message is outside the allowed window.",
    (100, 33): "The item no longer exists, or this page may not see it.",
    (100, 2018001): "No matching person was found for this conversation.",
}
#: 1 "unknown error", 2 "unexpected error, retry later", 1200 "temporary send message failure".
TRANSIENT_CODES = {1, 2, 1200}
DEFAULT_WAIT = 60.0
#: Platform (app/page) limits are counted over a rolling hour and the usage headers carry no
#: time to wait: when one is at 100 % we wait this long instead of the default.
FULL_USAGE_WAIT = 600.0
USAGE_HEADERS = ("X-Business-Use-Case-Usage", "X-Page-Usage", "X-App-Usage")


class GraphAPI:
    """`https://graph.facebook.com/<version>/<path>` with a token; every error mapped."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, version: str, token: str, platform: str,
                 *, token_in: str = "header") -> None:
        self.http, self.base, self.version, self.token, self.platform = http, base_url.rstrip("/"), version, token, platform
        self.token_in = token_in  # "header" (default) or "query" (the legacy `access_token` parameter)

    def __repr__(self) -> str:
        return f"GraphAPI({self.base!r}, {self.version!r}, {self.platform!r}, token=***)"

    def url(self, path: str) -> str:
        return f"{self.base}/{self.version}/{path.lstrip('/')}"

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        params = dict(kwargs.pop("params", None) or {})
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token_in == "query":
            params["access_token"] = self.token
        else:
            headers["Authorization"] = f"Bearer {self.token}"
        with platform_errors(self.platform):
            response = await self.http.request(method, self.url(path), params=params, headers=headers, **kwargs)
        raise_for_graph_error(response, self.platform)
        return _json_or_empty(response, self.platform)

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, json_body: Any = None, data: Any = None) -> Any:
        return await self.request("POST", path, json=json_body, data=data)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)


async def platform_health(graph: GraphAPI, subscribed_path: str | None) -> dict[str, Any]:
    """What Meta says about this channel's access: the token (`GET /debug_token`) and, when there is
    a node to ask (`{page-id}` or `{waba-id}`), whether our app gets its webhooks (`subscribed_apps`).

    {"token_valid", "token_expires_at" (None: never), "scopes", "app_id", "subscribed" (None: not
    asked), "subscribed_fields"}. Errors are raised as the SendError tree (190 -> AuthFailed).
    """
    answer = await graph.get("debug_token", input_token=graph.token)
    data = answer.get("data") if isinstance(answer, dict) else None
    data = data if isinstance(data, dict) else {}
    expires = _int(data.get("expires_at"))
    app_id = str(data["app_id"]) if data.get("app_id") else None
    found: dict[str, Any] = {
        "token_valid": data.get("is_valid") is True,
        "token_expires_at": datetime.fromtimestamp(expires, UTC) if expires else None,   # 0: never
        "scopes": [str(s) for s in data.get("scopes") or [] if isinstance(s, str)],
        "app_id": app_id,
        "subscribed": None,
        "subscribed_fields": [],
    }
    if subscribed_path is None or not found["token_valid"]:
        return found
    apps = await graph.get(subscribed_path)
    rows = apps.get("data") if isinstance(apps, dict) else None
    ours = [app for app in _subscribed_apps(rows) if app_id is None or str(app.get("id")) == app_id]
    found["subscribed"] = bool(ours)
    found["subscribed_fields"] = sorted({str(f) for app in ours for f in app.get("subscribed_fields") or []})
    return found


def _subscribed_apps(rows: Any) -> list[dict[str, Any]]:
    """Page edge rows are the app itself ({"id", "name", "subscribed_fields"}); WABA rows wrap it
    in "whatsapp_business_api_data"."""
    apps = []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict):
            inner = row.get("whatsapp_business_api_data")
            apps.append(inner if isinstance(inner, dict) else row)
    return apps


def raise_for_graph_error(response: httpx.Response, platform: str = "Meta") -> None:
    if response.status_code < 400:
        return
    error = _error_object(response)
    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    message = " ".join(str(error.get("message") or f"HTTP {response.status_code}").split())
    if code in RATE_LIMIT_CODES or response.status_code == 429:
        raise RateLimited(f"{platform} rate limit ({code}): {message}", retry_after=usage_wait(response), code=code)
    if code in AUTH_CODES or response.status_code == 401:
        raise AuthFailed(f"{platform} rejected the access token ({code}): {message}", code=code)
    if code in TRANSIENT_CODES or response.status_code >= 500 or error.get("is_transient") is True:
        raise TransientError(f"{platform} failed ({code}): {message}", code=code)
    raise PermanentError(plain_words(code, subcode, f"{platform} refused it: {message}"), code=code)


def plain_words(code: int | None, subcode: int | None, fallback: str) -> str:
    """What to tell the agent: the subcode's words, else the code's, else the platform's own."""
    return PLAIN_SUBCODE_WORDS.get((code, subcode)) or PLAIN_WORDS.get(code) or fallback


def _json_or_empty(response: httpx.Response, platform: str) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError as exc:
        raise TransientError(f"{platform} answered HTTP {response.status_code} without JSON") from exc


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def usage_wait(response: httpx.Response) -> float:
    """Seconds until access returns, from the usage headers Meta sends with throttling errors.

    `estimated_time_to_regain_access` is in minutes (Business Use Case header); the app and
    page headers only give percentages, so a full one means FULL_USAGE_WAIT.
    """
    minutes, percent = 0, 0
    for name in USAGE_HEADERS:
        for usage in _usage_objects(response.headers.get(name)):
            minutes = max(minutes, _number(usage.get("estimated_time_to_regain_access")))
            percent = max(percent, *(_number(usage.get(k)) for k in ("call_count", "total_cputime", "total_time")))
    if minutes > 0:
        return minutes * 60.0
    return FULL_USAGE_WAIT if percent >= 100 else DEFAULT_WAIT


def _usage_objects(raw: str | None) -> list[dict[str, Any]]:
    """`{"call_count": ..}` (app, page) or `{"<business id>": [{..}, ..]}` (Business Use Case)."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    nested = [item for items in data.values() if isinstance(items, list) for item in items if isinstance(item, dict)]
    return nested or [data]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
