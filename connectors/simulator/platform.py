"""A fake social platform to run beside socialcrm: it pushes signed webhooks and serves an API.

    python -m connectors.simulator.platform --webhook-url http://127.0.0.1:8080/webhooks/simulator \\
        --secret S --token T --account-id brand --port 8090 --interval 2.0 [--seed N] [--count N]

(--secret and --token default to $SIMULATOR_SECRET and $SIMULATOR_TOKEN.)

It is deliberately an outsider: it never imports socialcrm's web layer or database, and it signs
with its own code, so the demo exercises exactly what a real platform would.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aiohttp import web

from .simulation import Item, Simulation

log = logging.getLogger("socialcrm.simulator.platform")

SIGNATURE_HEADER = "X-Simulator-Signature"
MAX_LENGTH = {True: 500, False: 2000}  # public, private: as SimulatorConnector declares


@dataclass(frozen=True)
class PlatformConfig:
    secret: str
    token: str
    account_id: str = "brand"
    webhook_url: str | None = None          # None: poll-only, nothing is pushed
    interval: float = 2.0                   # seconds between generated events; 0 disables the generator
    seed: int | None = None
    count: int | None = None                # stop generating after this many events
    followup_chance: float = 0.3            # a customer answers back to a reply
    followup_delay: tuple[float, float] = (2.0, 6.0)
    attempts: int = 4                       # webhook deliveries, like Meta: retried with backoff
    backoff: float = 1.0                    # first retry delay in seconds; doubles each time


CONFIG = web.AppKey("config", PlatformConfig)
SIM = web.AppKey("simulation", Simulation)
HTTP = web.AppKey("http", httpx.AsyncClient)
TASKS = web.AppKey("tasks", set)


def sign_body(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(account_id: str, items: list[Item]) -> bytes:
    return json.dumps({"account_id": account_id, "events": items}, ensure_ascii=False).encode()


# -- pushing events ---------------------------------------------------------------------

async def deliver(app: web.Application, item: Item) -> int | None:
    """POST one event, retrying failures with doubling backoff; the last status, None if unreachable."""
    config = app[CONFIG]
    body = webhook_body(config.account_id, [item])
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(config.secret, body)}
    status: int | None = None
    for attempt in range(1, config.attempts + 1):
        try:
            status = (await app[HTTP].post(config.webhook_url, content=body, headers=headers)).status_code
        except httpx.HTTPError as exc:
            status, reason = None, type(exc).__name__
        else:
            reason = f"HTTP {status}"
            if status < 300:
                log.info("delivered %s %s -> %s (attempt %d)", item["type"], item["id"], reason, attempt)
                return status
        if attempt < config.attempts:
            await asyncio.sleep(config.backoff * 2 ** (attempt - 1))
    log.warning("gave up on %s %s after %d attempts: %s", item["type"], item["id"], config.attempts, reason)
    return status


def emit(app: web.Application, item: Item) -> None:
    """Push an already recorded event in the background, so a slow receiver never stalls the clock."""
    if app[CONFIG].webhook_url:
        spawn(app, deliver(app, item))


def spawn(app: web.Application, job: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(job)
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)


async def generate(app: web.Application) -> None:
    """Customers keep writing: one event per (jittered) interval, until --count is reached."""
    config, sim = app[CONFIG], app[SIM]
    produced = 0
    while config.count is None or produced < config.count:
        await asyncio.sleep(config.interval * random.uniform(0.5, 1.5))
        emit(app, sim.next_event())
        produced += 1


async def answer_back(app: web.Application, reply: Item) -> None:
    low, high = app[CONFIG].followup_delay
    await asyncio.sleep(random.uniform(low, high))
    emit(app, app[SIM].follow_up(reply))


async def background(app: web.Application) -> AsyncIterator[None]:
    """The HTTP client and the generator live exactly as long as the app (Ctrl-C included)."""
    app[HTTP] = httpx.AsyncClient(timeout=10)
    app[TASKS] = set()
    if app[CONFIG].interval > 0:
        spawn(app, generate(app))
    yield
    for task in list(app[TASKS]):
        task.cancel()
    await asyncio.gather(*app[TASKS], return_exceptions=True)
    await app[HTTP].aclose()


# -- the platform API -------------------------------------------------------------------

def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def require_token(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
    """Every API call needs the bearer token, compared in constant time."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    expected = f"Bearer {request.app[CONFIG].token}".encode()
    given = request.headers.get("Authorization", "").encode("utf-8", "replace")
    if not hmac.compare_digest(given, expected):
        return error(401, "invalid or missing API token")
    return await handler(request)


async def list_events(request: web.Request) -> web.Response:
    try:
        after = int(request.query.get("after") or 0)
        limit = min(max(int(request.query.get("limit") or 100), 1), 100)
    except ValueError:
        return error(400, "after and limit must be integers")
    if after < 0:
        return error(400, "after must not be negative")
    return web.json_response(request.app[SIM].page(after, limit))


async def create_reply(request: web.Request) -> web.Response:
    """Store a reply; the text "fail-permanent" is refused so that demos can show a failure."""
    try:
        body = await request.json()
    except ValueError:
        return error(400, "body is not JSON")
    problem = reply_problem(body)
    if problem:
        return error(400, problem)
    reply, new = request.app[SIM].store_reply(body, request.headers.get("Idempotency-Key"))
    if new and random.random() < request.app[CONFIG].followup_chance:
        spawn(request.app, answer_back(request.app, reply))
    return web.json_response({"id": reply["id"], "created_at": reply["created_at"]}, status=201 if new else 200)


def reply_problem(body: Any) -> str | None:
    """Why the platform refuses a reply, in the words an agent would see; None when it is fine."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    if not isinstance(body.get("text"), str) or not body["text"].strip():
        return "text is missing"
    if not isinstance(body.get("public"), bool) or not isinstance(body.get("thread_id"), str):
        return "public and thread_id are required"
    if len(body["text"]) > MAX_LENGTH[body["public"]]:
        return f"text is longer than {MAX_LENGTH[body['public']]} characters"
    if "fail-permanent" in body["text"]:
        return "This account is not allowed to reply here (simulated permanent failure)."
    return None


async def list_replies(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM].replies)


async def me(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return web.json_response({"id": config.account_id, "name": "Simulated brand", "handle": config.account_id})


async def moderate(request: web.Request) -> web.Response:
    item_id, action = request.match_info["item_id"], request.match_info["action"]
    sim = request.app[SIM]
    if action not in ("hide", "delete"):
        return error(400, f"unknown action {action!r}")
    if item_id not in sim.items:
        return error(404, "no such item")
    sim.moderation.append({"id": item_id, "action": action})
    return web.json_response({"ok": True})


def create_platform_app(config: PlatformConfig) -> web.Application:
    """The fake platform; the generator runs only while the app is started."""
    app = web.Application(middlewares=[require_token])
    app[CONFIG] = config
    app[SIM] = Simulation(config.account_id, config.seed)
    app.add_routes([
        web.get("/api/events", list_events, name="events"),
        web.post("/api/replies", create_reply, name="create-reply"),
        web.get("/api/replies", list_replies, name="replies"),
        web.get("/api/me", me, name="me"),
        web.post("/api/items/{item_id}/{action}", moderate, name="moderate"),
    ])
    app.cleanup_ctx.append(background)
    return app


# -- command line -----------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m connectors.simulator.platform", description=__doc__.splitlines()[0])
    parser.add_argument("--webhook-url", help="where to POST events; omit for poll-only")
    # Secrets may come from the environment so that they do not show in `ps` (socialcrm demo does this).
    parser.add_argument("--secret", default=os.environ.get("SIMULATOR_SECRET"),
                        help="webhook secret that signs every delivery (default: $SIMULATOR_SECRET)")
    parser.add_argument("--token", default=os.environ.get("SIMULATOR_TOKEN"),
                        help="API bearer token (default: $SIMULATOR_TOKEN)")
    parser.add_argument("--account-id", default="brand")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between events (0: none)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument("--followup-chance", type=float, default=0.3)
    args = parser.parse_args(argv)
    if not args.secret or not args.token:
        parser.error("--secret and --token (or $SIMULATOR_SECRET and $SIMULATOR_TOKEN) are required")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per delivery is ours
    config = PlatformConfig(
        secret=args.secret, token=args.token, account_id=args.account_id, webhook_url=args.webhook_url,
        interval=args.interval, seed=args.seed, count=args.count, followup_chance=args.followup_chance,
    )
    # run_app turns Ctrl-C into a clean shutdown that runs `background`'s cleanup.
    web.run_app(create_platform_app(config), host=args.host, port=args.port, print=log.info)


if __name__ == "__main__":
    main()
