"""CSRF protection: a synchronizer token kept in the (encrypted) session.

Every state-changing request must echo the token, as the form field `csrf_token` or the
`X-CSRF-Token` header (htmx sends it from `hx-headers` on <body>). Webhooks are exempt: a
platform cannot know our token, and each connector verifies the delivery's signature instead.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session import get_session

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXEMPT_PREFIXES = ("/webhooks/",)
SESSION_KEY = "csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
REASON = ("This form has expired or was not sent from socialcrm (CSRF token missing or wrong). "
          "Reload the page and try again.")


async def csrf_token(request: web.Request) -> str:
    """The session's token, created on first use."""
    session = await get_session(request)
    if not session.get(SESSION_KEY):
        session[SESSION_KEY] = secrets.token_urlsafe(32)
    return session[SESSION_KEY]


async def _supplied(request: web.Request) -> str:
    if HEADER in request.headers:
        return request.headers[HEADER]
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(FIELD, "")
        return value if isinstance(value, str) else ""
    return ""


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in UNSAFE_METHODS and not request.path.startswith(EXEMPT_PREFIXES):
        expected = (await get_session(request)).get(SESSION_KEY) or ""
        supplied = await _supplied(request)
        if not expected or not hmac.compare_digest(expected.encode(), supplied.encode()):
            raise web.HTTPForbidden(reason="CSRF check failed", text=REASON)
    return await handler(request)
