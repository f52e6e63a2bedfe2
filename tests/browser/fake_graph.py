"""A stand-in for Meta's Graph API on loopback, for browser tests: it accepts replies, records them.

    python tests/browser/fake_graph.py --port N

POST .../{comment-id}/comments     -> {"id": "<new comment id>"}        (Facebook public reply)
POST .../{account}/messages        -> {"recipient_id", "message_id"}     (Messenger / Instagram DMs)
GET  /_requests                    -> every request received, for the test to inspect
"""

from __future__ import annotations

import argparse
import itertools

from aiohttp import web

RECEIVED = web.AppKey("received", list)
IDS = itertools.count(1)


async def record(request: web.Request) -> web.Response:
    body = await request.text()
    request.app[RECEIVED].append({"method": request.method, "path": request.path, "body": body,
                                  "authorization": request.headers.get("Authorization", "")})
    n = next(IDS)
    if request.path.endswith("/messages"):
        return web.json_response({"recipient_id": "customer", "message_id": f"m_fake_{n}"})
    return web.json_response({"id": f"fake_{n}"})


async def received(request: web.Request) -> web.Response:
    return web.json_response(request.app[RECEIVED])


def create_app() -> web.Application:
    app = web.Application()
    app[RECEIVED] = []
    app.router.add_get("/_requests", received)
    app.router.add_post("/{tail:.*}", record)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    web.run_app(create_app(), host="127.0.0.1", port=parser.parse_args().port, print=None)
