"""Webhook endpoints: handshake, signature, parse, store, acknowledge; nothing else.

Outcomes by whose fault they are (Zulip): a bad signature 401 (logged without the body), a
malformed body 400, an event we understand but do not handle 200, a body over the limit
413 (aiohttp's client_max_size), a database that cannot store the delivery 503 so the
platform retries. 200 means the raw delivery is durably stored.

`/webhooks/{connector}` serves one app-wide callback URL (Meta sends every page there): the
signature is checked against each channel of that connector until one matches, and the
ingest pipeline routes each event to its channel by the platform account id.
"""

from __future__ import annotations

import logging

from aiohttp import web

from socialcrm.channels import STOPPED, LoadedChannel
from socialcrm.connector import WebhookRequest
from socialcrm.db import unavailable
from socialcrm.errors import InvalidSignature, MalformedPayload, UnsupportedEvent
from socialcrm.health import rejections_for
from socialcrm.receipts import StoreFailed
from socialcrm.web.keys import CORE

log = logging.getLogger(__name__)

def setup_routes(app: web.Application) -> None:
    app.router.add_route("GET", "/webhooks/{connector}", handshake, name="webhook-handshake")
    app.router.add_route("GET", "/webhooks/{connector}/{channel_id:\\d+}", handshake, name="webhook-handshake-channel")
    app.router.add_route("POST", "/webhooks/{connector}", receive, name="webhook")
    app.router.add_route("POST", "/webhooks/{connector}/{channel_id:\\d+}", receive, name="webhook-channel")


def _retry_later() -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(text="could not store the delivery; please retry", headers={"Retry-After": "5"})


async def _candidates(request: web.Request) -> list[LoadedChannel]:
    """The channels this delivery may be for; 503 while the database cannot say (not 500)."""
    try:
        return await _load_candidates(request)
    except Exception as exc:
        if not unavailable(exc):
            raise
        log.warning("webhook %s: database unavailable (%s)", request.match_info["connector"], exc)
        raise _retry_later() from None


async def _load_candidates(request: web.Request) -> list[LoadedChannel]:
    core = request.app[CORE]
    key = request.match_info["connector"]
    if "channel_id" in request.match_info:
        channel = await core.channels.get(int(request.match_info["channel_id"]))
        found = [channel] if channel and channel.row.connector == key and channel.row.status not in STOPPED else []
    else:
        found = await core.channels.for_connector(key)
    if not found:
        raise web.HTTPNotFound(text=f"no active {key} channel here")
    return found


async def _webhook_request(request: web.Request) -> WebhookRequest:
    return WebhookRequest(request.method, request.path, request.headers, dict(request.query), await request.read())


async def handshake(request: web.Request) -> web.Response:
    """Platform verification (Meta hub.challenge, X CRC): the first channel that recognises it answers."""
    req = await _webhook_request(request)
    answers = [a for c in await _candidates(request) if (a := c.connector.handshake(req)) is not None]
    answer = next((a for a in answers if a.status < 400), answers[0] if answers else None)
    if answer is None:
        raise web.HTTPBadRequest(text="not a verification request")
    return web.Response(status=answer.status, text=answer.body, content_type=answer.content_type)


def _verified(candidates: list[LoadedChannel], req: WebhookRequest) -> LoadedChannel:
    for channel in candidates:
        try:
            channel.connector.verify(req)
            return channel
        except InvalidSignature:
            continue
    raise InvalidSignature("no channel's secret matches the signature")


def _count_rejection(request: web.Request) -> None:
    """One more rejected delivery for the health page: by connector, or by channel when the URL
    names one. Only a time is kept, in this process's memory; never anything of the body."""
    counter = rejections_for(request.app[CORE].engine)
    if "channel_id" in request.match_info:
        counter.add(("channel", int(request.match_info["channel_id"])))
    else:
        counter.add(("connector", request.match_info["connector"]))


async def receive(request: web.Request) -> web.Response:
    req = await _webhook_request(request)
    key = request.match_info["connector"]
    try:
        channel = _verified(await _candidates(request), req)
        events = channel.connector.parse(req)
    except InvalidSignature as exc:
        log.warning("webhook %s rejected: %s (from %s)", key, exc, request.remote)
        _count_rejection(request)
        raise web.HTTPUnauthorized(text=f"invalid signature: {exc}") from None
    except MalformedPayload as exc:
        log.warning("webhook %s malformed: %s", key, exc)
        _count_rejection(request)
        raise web.HTTPBadRequest(text=f"malformed payload: {exc}") from None
    except UnsupportedEvent as exc:
        log.info("webhook %s unsupported event: %s", key, exc)
        return web.Response(text=f"ignored: {exc}")
    try:
        await request.app[CORE].pipeline.submit(channel, req, events)
    except StoreFailed:
        raise _retry_later() from None
    return web.json_response({"stored": True, "events": len(events)})
