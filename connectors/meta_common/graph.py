"""Thin Graph API calls and the mapping of Graph error codes onto the socialcrm error tree.

Errors are mapped by `error.code` (and `error_subcode`), never by message text: messages change
and are translated, codes are documented.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from socialcrm.errors import AuthFailed, PermanentError, RateLimited, TransientError, platform_errors

DEFAULT_VERSION = "v24.0"
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
TRANSIENT_CODES = {1, 2}
DEFAULT_WAIT = 60.0


class GraphAPI:
    """`https://graph.facebook.com/<version>/<path>` with a token; every error mapped."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, version: str, token: str, platform: str) -> None:
        self.http, self.base, self.version, self.token, self.platform = http, base_url.rstrip("/"), version, token, platform

    def url(self, path: str) -> str:
        return f"{self.base}/{self.version}/{path.lstrip('/')}"

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        params = {**kwargs.pop("params", {}), "access_token": self.token}
        with platform_errors(self.platform):
            response = await self.http.request(method, self.url(path), params=params, **kwargs)
        raise_for_graph_error(response, self.platform)
        return response.json() if response.content else {}

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, json_body: Any = None, data: Any = None) -> Any:
        return await self.request("POST", path, json=json_body, data=data)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)


def raise_for_graph_error(response: httpx.Response, platform: str = "Meta") -> None:
    if response.status_code < 400:
        return
    error = _error_object(response)
    code = error.get("code")
    message = str(error.get("message") or f"HTTP {response.status_code}")
    if code in RATE_LIMIT_CODES or response.status_code == 429:
        raise RateLimited(f"{platform} rate limit ({code}): {message}", retry_after=usage_wait(response), code=code)
    if code in AUTH_CODES or response.status_code == 401:
        raise AuthFailed(f"{platform} rejected the access token ({code}): {message}", code=code)
    if code in TRANSIENT_CODES or response.status_code >= 500 or error.get("is_transient"):
        raise TransientError(f"{platform} failed ({code}): {message}", code=code)
    raise PermanentError(PLAIN_WORDS.get(code, f"{platform} refused it: {message}"), code=code)


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def usage_wait(response: httpx.Response) -> float:
    """Seconds until access returns: Business Use Case usage headers give it in minutes."""
    raw = response.headers.get("X-Business-Use-Case-Usage")
    if raw:
        try:
            usage = json.loads(raw)
            minutes = max(int(item.get("estimated_time_to_regain_access", 0))
                          for items in usage.values() for item in items)
            if minutes > 0:
                return minutes * 60.0
        except (ValueError, TypeError, AttributeError):
            pass
    return DEFAULT_WAIT
