"""A stand-in for the Telegram Bot API on loopback, for browser tests; it records every call.

    python tests/browser/fake_telegram.py --port N --token <the one valid bot token>

POST /bot<token>/getMe             -> the bot's User, or 401 Unauthorized for any other token
POST /bot<token>/setWebhook        -> true, "Webhook was set"; the url and secret_token are kept
POST /bot<token>/getWebhookInfo    -> a WebhookInfo with the kept url, 2 pending updates and an error
GET  /_requests                    -> [{"method", "valid_token", "body"}] for the test to inspect

Bodies as documented at https://core.telegram.org/bots/api (Making requests, getMe, setWebhook,
getWebhookInfo).
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

TOKEN = web.AppKey("token", str)
RECEIVED = web.AppKey("received", list)
WEBHOOK = web.AppKey("webhook", dict)
UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}
LAST_ERROR = "Wrong response from the webhook: 502 Bad Gateway"


async def bot_method(request: web.Request) -> web.Response:
    token, method = request.match_info["token"], request.match_info["method"]
    raw = await request.text()
    body = json.loads(raw) if raw else {}
    valid = token == request.app[TOKEN]
    request.app[RECEIVED].append({"method": method, "valid_token": valid, "body": body})
    if not valid:
        return web.json_response(UNAUTHORIZED, status=401)
    answer = ANSWERS.get(method)
    if answer is None:
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
    return web.json_response({"ok": True, **answer(request.app, token, body)})


def get_me(app: web.Application, token: str, body: dict) -> dict:
    return {"result": {"id": int(token.split(":", 1)[0]), "is_bot": True, "first_name": "Acme Support",
                       "username": "acme_support_bot", "can_join_groups": True,
                       "can_read_all_group_messages": False, "supports_inline_queries": False}}


def set_webhook(app: web.Application, token: str, body: dict) -> dict:
    app[WEBHOOK] = {"url": body.get("url", ""), "secret_token": body.get("secret_token", "")}
    return {"result": True, "description": "Webhook was set"}


def get_webhook_info(app: web.Application, token: str, body: dict) -> dict:
    url = app[WEBHOOK].get("url", "")
    info = {"url": url, "has_custom_certificate": False, "pending_update_count": 2 if url else 0}
    if url:
        info.update(last_error_date=1795600000, last_error_message=LAST_ERROR, max_connections=40)
    return {"result": info}


ANSWERS = {"getMe": get_me, "setWebhook": set_webhook, "getWebhookInfo": get_webhook_info}


async def received(request: web.Request) -> web.Response:
    return web.json_response(request.app[RECEIVED])


def create_app(token: str) -> web.Application:
    app = web.Application()
    app[TOKEN], app[RECEIVED], app[WEBHOOK] = token, [], {}
    app.router.add_get("/_requests", received)
    app.router.add_post("/bot{token}/{method}", bot_method)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    web.run_app(create_app(args.token), host="127.0.0.1", port=args.port, print=None)
