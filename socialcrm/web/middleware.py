"""The one error renderer and the security headers every response carries.

Errors: an HTTP error raised anywhere becomes a status page for people, JSON for the API and
plain text for webhooks and htmx fragments; a domain error maps to its status; anything else is
logged with its stack trace and shown as a plain 500 that reveals nothing.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from socialcrm.conversations import ConversationNotFound
from socialcrm.web.render import render

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
TITLES = {400: "Bad request", 401: "Please sign in", 403: "Not allowed", 404: "Not found",
          405: "Not allowed", 413: "Too large", 422: "Cannot do that", 500: "Something went wrong"}
#: Machines and assets get a short text, never a page (and never a session cookie).
PLAIN_PREFIXES = ("/webhooks/", "/static/")
#: Domain errors any service may raise, and the status they mean.
DOMAIN_ERRORS: tuple[tuple[type[Exception], int], ...] = ((ConversationNotFound, 404), (PermissionError, 403))


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches static files, streams and aiohttp's own errors."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await _error_response(request, exc.status, _message(exc), exc.headers)
    except Exception as exc:
        status = next((code for kind, code in DOMAIN_ERRORS if isinstance(exc, kind)), 500)
        if status == 500:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return await _error_response(request, 500, "The error was logged. Try again in a moment.")
        return await _error_response(request, status, str(exc))


def _message(exc: web.HTTPException) -> str:
    """The handler's own words, unless aiohttp filled in its default '404: Not Found'."""
    text = exc.text or ""
    return "" if text.startswith(f"{exc.status}:") else text


async def _error_response(request: web.Request, status: int, message: str,
                          headers: object = None) -> web.StreamResponse:
    title = TITLES.get(status, "Error")
    extra = {k: v for k, v in dict(headers or {}).items()
             if k.lower() in ("location", "allow", "www-authenticate", "hx-redirect", "retry-after")}
    if request.path.startswith("/api/"):
        return web.json_response({"error": title, "message": message}, status=status, headers=extra)
    if request.path.startswith(PLAIN_PREFIXES) or request.headers.get("HX-Request") or request.path == "/events":
        return web.Response(status=status, text=message or title, headers=extra)
    try:
        response = await render(request, "error.html", {"status": status, "title": title, "message": message},
                                status=status)
    except Exception:   # the error page itself failed (no session, no templates): still answer
        log.exception("error page failed to render")
        response = web.Response(status=status, text=f"{title}. {message}".strip())
    response.headers.update(extra)
    return response
