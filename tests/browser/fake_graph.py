"""A stand-in for Meta's Graph API on loopback, for browser tests: it accepts replies, records them.

    python tests/browser/fake_graph.py --port N [--app-id ID]

POST .../{comment-id}/comments     -> {"id": "<new comment id>"}        (Facebook public reply)
POST .../{account}/messages        -> {"recipient_id", "message_id"}     (Messenger / Instagram DMs)
GET  .../debug_token               -> {"data": {"app_id", "is_valid", "expires_at": 0, "scopes"}}
GET  .../{node}/subscribed_apps    -> {"data": [{"id": <app id>, "name", "subscribed_fields"}]}
GET  /_requests                    -> every request received, for the test to inspect
POST /_token/revoked               -> from now on every call answers the documented Graph error 190
                                      (HTTP 400, OAuthException): the token has been invalidated
POST /_token/valid                 -> back to normal
"""

from __future__ import annotations

import argparse
import itertools

from aiohttp import web

RECEIVED = web.AppKey("received", list)
REVOKED = web.AppKey("revoked", dict)
APP_ID = web.AppKey("app_id", str)
IDS = itertools.count(1)
#: The documented shape of an invalidated token (Graph "Access Token Error Codes"), HTTP 400.
ERROR_190 = {"error": {"message": "Error validating access token: The session has been invalidated because the "
                                  "user changed their password or Facebook has changed the session for "
                                  "security reasons.",
                       "type": "OAuthException", "code": 190, "error_subcode": 460,
                       "fbtrace_id": "AbCdEfGhIjK"}}


def _revoked(request: web.Request) -> web.Response | None:
    return web.json_response(ERROR_190, status=400) if request.app[REVOKED]["on"] else None


async def _remember(request: web.Request) -> None:
    request.app[RECEIVED].append({"method": request.method, "path": request.path, "body": await request.text(),
                                  "authorization": request.headers.get("Authorization", "")})


async def record(request: web.Request) -> web.Response:
    await _remember(request)
    if (refused := _revoked(request)) is not None:
        return refused
    n = next(IDS)
    if request.path.endswith("/messages"):
        return web.json_response({"recipient_id": "customer", "message_id": f"m_fake_{n}"})
    return web.json_response({"id": f"fake_{n}"})


async def read(request: web.Request) -> web.Response:
    await _remember(request)
    if (refused := _revoked(request)) is not None:
        return refused
    app_id = request.app[APP_ID]
    if request.path.endswith("/debug_token"):
        return web.json_response({"data": {"app_id": app_id, "type": "PAGE", "application": "socialcrm",
                                           "expires_at": 0, "is_valid": True,
                                           "scopes": ["pages_messaging", "pages_manage_engagement"]}})
    if request.path.endswith("/subscribed_apps"):
        return web.json_response({"data": [{"category": "Business", "link": "https://socialcrm.test",
                                            "name": "socialcrm", "id": app_id,
                                            "subscribed_fields": ["feed", "messages"]}]})
    return web.json_response({"error": {"message": "Unknown path", "type": "GraphMethodException", "code": 100}},
                             status=400)


async def received(request: web.Request) -> web.Response:
    return web.json_response(request.app[RECEIVED])


async def set_token(request: web.Request) -> web.Response:
    request.app[REVOKED]["on"] = request.match_info["state"] == "revoked"
    return web.json_response(request.app[REVOKED])


def create_app(app_id: str = "424242") -> web.Application:
    app = web.Application()
    app[RECEIVED], app[REVOKED], app[APP_ID] = [], {"on": False}, app_id
    app.router.add_get("/_requests", received)
    app.router.add_post("/_token/{state:revoked|valid}", set_token)
    app.router.add_get("/{tail:.*}", read)
    app.router.add_post("/{tail:.*}", record)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app-id", default="424242")
    args = parser.parse_args()
    web.run_app(create_app(args.app_id), host="127.0.0.1", port=args.port, print=None)
