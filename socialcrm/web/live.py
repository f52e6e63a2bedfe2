"""Server-sent events to the browser: `inbox` when a queue changes, `conversation-<id>` when a
thread changes. Events carry no customer data, only "something changed"; the page re-fetches
the partial through the normal, access-checked routes. Each stream forwards only events of
the teams its viewer may see.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from socialcrm.users import Viewer
from socialcrm.web.auth import viewer_of
from socialcrm.web.keys import CORE, STREAMS

routes = web.RouteTableDef()
HEARTBEAT_SECONDS = 15.0


def sse_name(event: dict[str, Any]) -> str | None:
    """The SSE event name the page listens for, or None for events the browser does not need."""
    if event.get("type") == "inbox":
        return "inbox"
    if event.get("type") == "conversation" and event.get("conversation_id") is not None:
        return f"conversation-{int(event['conversation_id'])}"
    return None


def visible(event: dict[str, Any], viewer: Viewer) -> bool:
    return viewer.may_see_team(event.get("team_id"))


async def _forward(sse: EventSourceResponse, queue: asyncio.Queue[dict[str, Any]], viewer: Viewer) -> None:
    try:
        while True:
            event = await queue.get()
            name = sse_name(event)
            if name is not None and visible(event, viewer):
                data = {k: event[k] for k in ("type", "conversation_id") if k in event}
                await sse.send(json.dumps(data), event=name)
    except (ConnectionResetError, RuntimeError, TimeoutError):
        return   # the browser went away; the handler notices and cleans up


@routes.get("/events", name="events")
async def events(request: web.Request) -> web.StreamResponse:
    """One stream per open page; ends when the browser goes away or the server shuts down."""
    viewer = viewer_of(request)
    streams = request.app[STREAMS]
    # Subscribe before the browser sees the stream open, so nothing published after that is missed.
    async with request.app[CORE].hub.subscribe() as queue, sse_response(
            request, ping_interval=HEARTBEAT_SECONDS,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}) as sse:
        streams.add(sse)
        forward = asyncio.create_task(_forward(sse, queue, viewer))
        closed = asyncio.create_task(sse.wait())
        try:
            await asyncio.wait([forward, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            forward.cancel()
            closed.cancel()
            streams.discard(sse)
    return sse


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every open stream, so stopping the server does not wait for browsers."""
    for sse in list(app[STREAMS]):
        sse.stop_streaming()
