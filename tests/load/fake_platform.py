"""Fake platform APIs on loopback for the load tests and bench/outbound.py.

    python tests/load/fake_platform.py --port 8123 [--whatsapp-rate 80] [--telegram-rate 30]

Speaks just enough of four send APIs, in their documented shapes:

* WhatsApp Cloud API `POST /{version}/{phone_number_id}/messages`: a token bucket of
  `--whatsapp-rate` messages per second per phone number (one second of burst, as Meta's
  "80 messages per second"); beyond it HTTP 429 with Graph error 130429. No idempotency key.
* Telegram Bot API `POST /bot{token}/sendMessage`: `--telegram-rate` per bot, beyond it
  `{"ok": false, "error_code": 429, "parameters": {"retry_after": 1}}`.
* the simulator's `POST /api/replies`, honouring `Idempotency-Key` (a repeated key returns the
  first reply and is not delivered again), 429 with `Retry-After`;
* Mastodon `POST /api/v1/statuses` (Idempotency-Key honoured; 429 with `X-RateLimit-Reset`,
  an ISO 8601 time) plus the `GET /api/v1/statuses/{id}` and `GET /api/v2/instance` it reads.

Faults are queued per account with `POST /_faults {"kind", "account", "faults": [...]}`, one per
request: "500", "429:<seconds>", "timeout:<seconds>" (no answer for that long, nothing accepted),
"reset" (the connection is dropped before anything is accepted), "stall" (accepted, then no answer
until `POST /_release`). `GET /_state` returns every request with its time, what was delivered,
and the requests that came earlier than a 429 allowed (not counting those that arrive within
IN_FLIGHT_GRACE of the 429: they were sent before it could be read). Loopback only; nothing is kept on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web


@dataclass
class Bucket:
    """Meta's and Telegram's limits as a token bucket holding one second of sends."""

    rate: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.rate

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


#: A request arriving this soon after a 429 was already on its way when the 429 left: not a retry.
IN_FLIGHT_GRACE = 0.25


@dataclass
class Account:
    bucket: Bucket | None = None
    faults: list[str] = field(default_factory=list)
    allowed_at: float = 0.0              # time.time() before which a 429 said: do not come back
    refused_at: float = 0.0
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)   # by idempotency key or id


class Platform:
    def __init__(self, whatsapp_rate: float, telegram_rate: float) -> None:
        self.rates = {"whatsapp": whatsapp_rate, "telegram": telegram_rate}
        self.accounts: dict[tuple[str, str], Account] = {}
        self.log: list[dict[str, Any]] = []
        self.early: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.ids = itertools.count(1)

    def account(self, kind: str, key: str) -> Account:
        found = self.accounts.get((kind, key))
        if found is None:
            rate = self.rates.get(kind)
            found = self.accounts[(kind, key)] = Account(Bucket(rate) if rate else None)
        return found

    def note(self, kind: str, key: str, outcome: str, **extra: Any) -> None:
        self.log.append({"kind": kind, "account": key, "t": time.time(), "outcome": outcome, **extra})


PLATFORM = web.AppKey("platform", Platform)


async def fault_or_limit(request: web.Request, kind: str, key: str) -> tuple[Account, str | None, float]:
    """(account, the fault to play or None, its seconds); notes a request that came too early."""
    platform = request.app[PLATFORM]
    account = platform.account(kind, key)
    now = time.time()
    if account.refused_at + IN_FLIGHT_GRACE < now < account.allowed_at:
        platform.early.append({"kind": kind, "account": key, "t": now, "allowed_at": account.allowed_at})
    if account.faults:
        name, _, arg = account.faults.pop(0).partition(":")
        return account, name, float(arg or 0)
    if account.bucket is not None and not account.bucket.take():
        return account, "throttle", 0.0
    return account, None, 0.0


async def play(request: web.Request, kind: str, key: str, fault: str, seconds: float, account: Account) -> None:
    """Faults that answer nothing: drop the connection, or keep it waiting."""
    platform = request.app[PLATFORM]
    platform.note(kind, key, fault)
    if fault == "reset":
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError
    await asyncio.sleep(seconds)
    raise web.HTTPInternalServerError(text="timed out")


def deliver(request: web.Request, kind: str, key: str, account: Account, idem: str | None,
            body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Keep one delivered message per idempotency key; (the message, whether it is new)."""
    platform = request.app[PLATFORM]
    if idem and idem in account.delivered:
        platform.note(kind, key, "repeat", idem=idem, id=account.delivered[idem]["id"])
        return account.delivered[idem], False
    message = {"id": str(next(platform.ids)), "body": body, "t": time.time()}
    account.delivered[idem or f"#{message['id']}"] = message
    platform.note(kind, key, "accepted", idem=idem, id=message["id"])
    return message, True


async def stall_if_asked(request: web.Request, kind: str, key: str, fault: str | None) -> None:
    if fault == "stall":
        request.app[PLATFORM].note(kind, key, "stalled")
        try:
            await asyncio.wait_for(request.app[PLATFORM].release.wait(), timeout=120)
        except TimeoutError:
            pass


def refused(request: web.Request, kind: str, key: str, account: Account, seconds: float,
            until: float | None = None) -> None:
    account.refused_at = time.time()
    account.allowed_at = max(account.allowed_at, until if until is not None else time.time() + seconds)
    request.app[PLATFORM].note(kind, key, "429", wait=seconds)


# -- WhatsApp Cloud API ------------------------------------------------------------------------

async def whatsapp_send(request: web.Request) -> web.Response:
    key = request.match_info["phone"]
    account, fault, seconds = await fault_or_limit(request, "whatsapp", key)
    if fault == "throttle":
        request.app[PLATFORM].note("whatsapp", key, "429")
        return web.json_response({"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException",
                                            "code": 130429, "error_data": {"messaging_product": "whatsapp"},
                                            "fbtrace_id": "Fake"}}, status=429)
    if fault == "429":
        refused(request, "whatsapp", key, account, seconds)
        return web.json_response({"error": {"message": "(#130429) Rate limit hit", "code": 130429}}, status=429,
                                 headers={"Retry-After": f"{seconds:g}"})
    if fault == "500":
        request.app[PLATFORM].note("whatsapp", key, "500")
        return web.json_response({"error": {"message": "An unknown error occurred", "code": 1}}, status=500)
    if fault in ("reset", "timeout"):
        await play(request, "whatsapp", key, fault, seconds, account)
    body = await request.json()
    message, _ = deliver(request, "whatsapp", key, account, None, body)
    await stall_if_asked(request, "whatsapp", key, fault)
    to = body.get("to") or body.get("recipient")
    return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                              "messages": [{"id": f"wamid.FAKE{message['id']}"}]})


# -- Telegram Bot API --------------------------------------------------------------------------

async def telegram_send(request: web.Request) -> web.Response:
    key = request.match_info["token"]
    account, fault, seconds = await fault_or_limit(request, "telegram", key)
    if fault in ("throttle", "429"):
        wait = max(1.0, seconds)
        refused(request, "telegram", key, account, wait)
        return web.json_response({"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {wait:g}",
                                  "parameters": {"retry_after": int(wait)}}, status=429)
    if fault == "500":
        request.app[PLATFORM].note("telegram", key, "500")
        return web.json_response({"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502)
    if fault in ("reset", "timeout"):
        await play(request, "telegram", key, fault, seconds, account)
    body = await request.json()
    message, _ = deliver(request, "telegram", key, account, None, body)
    await stall_if_asked(request, "telegram", key, fault)
    return web.json_response({"ok": True, "result": {
        "message_id": int(message["id"]), "date": int(time.time()), "text": body.get("text", ""),
        "chat": {"id": int(body["chat_id"]), "type": "private"}}})


# -- the simulator's API -----------------------------------------------------------------------

def bearer(request: web.Request) -> str:
    return request.headers.get("Authorization", "").removeprefix("Bearer ").strip()


async def simulator_reply(request: web.Request) -> web.Response:
    key = bearer(request)
    account, fault, seconds = await fault_or_limit(request, "simulator", key)
    if fault == "429":
        refused(request, "simulator", key, account, seconds)
        return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": f"{seconds:g}"})
    if fault == "500":
        request.app[PLATFORM].note("simulator", key, "500")
        return web.json_response({"error": "internal error"}, status=503)
    if fault in ("reset", "timeout"):
        await play(request, "simulator", key, fault, seconds, account)
    body = await request.json()
    message, _ = deliver(request, "simulator", key, account, request.headers.get("Idempotency-Key"), body)
    await stall_if_asked(request, "simulator", key, fault)
    return web.json_response({"id": f"sim-{message['id']}", "created_at": int(message["t"] * 1000)})


# -- Mastodon ----------------------------------------------------------------------------------

async def mastodon_status(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["id"], "visibility": "public", "account": {"acct": "kunde"},
                              "created_at": "2026-11-25T09:00:00.000Z", "content": "<p>hei</p>"})


async def mastodon_instance(request: web.Request) -> web.Response:
    return web.json_response({"configuration": {"statuses": {"max_characters": 500}}})


async def mastodon_post(request: web.Request) -> web.Response:
    key = bearer(request)
    account, fault, seconds = await fault_or_limit(request, "mastodon", key)
    if fault == "429":
        at = datetime.now(UTC) + timedelta(seconds=seconds)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)   # the header has milliseconds
        refused(request, "mastodon", key, account, seconds, until=at.timestamp())
        reset = at.isoformat(timespec="milliseconds")
        return web.json_response({"error": "Too many requests"}, status=429, headers={
            "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    if fault == "500":
        request.app[PLATFORM].note("mastodon", key, "500")
        return web.json_response({"error": "Internal error"}, status=500)
    if fault in ("reset", "timeout"):
        await play(request, "mastodon", key, fault, seconds, account)
    form = dict(await request.post())
    message, _ = deliver(request, "mastodon", key, account, request.headers.get("Idempotency-Key"),
                         {k: str(v) for k, v in form.items()})
    await stall_if_asked(request, "mastodon", key, fault)
    created = datetime.fromtimestamp(message["t"], UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return web.json_response({"id": f"1{message['id']:0>6}", "created_at": created, "visibility": form.get("visibility")})


# -- control -----------------------------------------------------------------------------------

async def set_faults(request: web.Request) -> web.Response:
    spec = await request.json()
    platform = request.app[PLATFORM]
    platform.account(spec["kind"], spec["account"]).faults.extend(spec["faults"])
    return web.json_response({"ok": True})


async def release(request: web.Request) -> web.Response:
    request.app[PLATFORM].release.set()
    return web.json_response({"ok": True})


async def state(request: web.Request) -> web.Response:
    platform = request.app[PLATFORM]
    delivered = {f"{kind}/{key}": [{"key": k, **m} for k, m in acc.delivered.items()]
                 for (kind, key), acc in platform.accounts.items()}
    return web.json_response({"log": platform.log, "early": platform.early, "delivered": delivered})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_app(whatsapp_rate: float, telegram_rate: float) -> web.Application:
    app = web.Application()
    app[PLATFORM] = Platform(whatsapp_rate, telegram_rate)
    app.router.add_post("/{version:v[0-9.]+}/{phone:[0-9]+}/messages", whatsapp_send)
    app.router.add_post("/bot{token}/sendMessage", telegram_send)
    app.router.add_post("/api/replies", simulator_reply)
    app.router.add_get("/api/v1/statuses/{id}", mastodon_status)
    app.router.add_get("/api/v2/instance", mastodon_instance)
    app.router.add_post("/api/v1/statuses", mastodon_post)
    app.router.add_post("/_faults", set_faults)
    app.router.add_post("/_release", release)
    app.router.add_get("/_state", state)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--whatsapp-rate", type=float, default=80.0)
    parser.add_argument("--telegram-rate", type=float, default=30.0)
    args = parser.parse_args()
    web.run_app(build_app(args.whatsapp_rate, args.telegram_rate), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
