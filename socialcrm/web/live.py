"""Server-sent events to the browser: `inbox` when a queue changes, `conversation-<id>` when a
thread changes, `notification` when the viewer's own notifications change. Events carry no
customer data, only "something changed"; the page re-fetches the partial through the normal,
access-checked routes. Each stream forwards only events of the teams its viewer may see, and
notifications only to the person they are for.

A stream opened with `?conversation=<id>` (the conversation page's one stream: presence.js
points htmx at it) also makes its viewer present in that conversation: it announces them ("viewing") on open and every
heartbeat, says "left" when it closes, and sends `presence` events, the sentence of who else is
viewing or typing. `POST /conversations/<id>/typing` announces typing (never the text).
Presence lives in memory (socialcrm/presence.py), fed by the hub, so it crosses processes
whenever the hub does.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from socialcrm import inbox as queries
from socialcrm import presence
from socialcrm.models import utcnow
from socialcrm.users import Viewer
from socialcrm.web.auth import viewer_of
from socialcrm.web.keys import CORE, STREAMS

routes = web.RouteTableDef()
HEARTBEAT_SECONDS = 15.0
#: How often a presence stream re-reads the board, so expired viewers and typists disappear.
PRESENCE_TICK_SECONDS = 2.0
NOT_FOUND = "There is no such conversation, or it belongs to a team you are not in."

#: One board per hub (that is, per process and core); weak, so a stopped core takes its board along.
_boards: WeakKeyDictionary[Any, presence.PresenceBoard] = WeakKeyDictionary()
_typing_relayed: WeakKeyDictionary[Any, dict[tuple[int, int], datetime]] = WeakKeyDictionary()


def board_of(app: web.Application) -> presence.PresenceBoard:
    hub = app[CORE].hub
    if hub not in _boards:
        _boards[hub] = presence.PresenceBoard()
    return _boards[hub]


def sse_name(event: dict[str, Any]) -> str | None:
    """The SSE event name the page listens for, or None for events the browser does not need."""
    if event.get("type") == "inbox":
        return "inbox"
    if event.get("type") == "conversation" and event.get("conversation_id") is not None:
        return f"conversation-{int(event['conversation_id'])}"
    if event.get("type") == "notification" and event.get("user_id") is not None:
        return "notification"
    return None


def visible(event: dict[str, Any], viewer: Viewer) -> bool:
    """Per-person events (a notification) go to that person's streams only; the rest by team."""
    if event.get("type") == "notification":
        return event.get("user_id") == viewer.id
    return viewer.may_see_team(event.get("team_id"))


@dataclass
class Room:
    """The conversation a presence stream sits in, and what it last told its browser."""

    conversation_id: int
    team_id: int
    board: presence.PresenceBoard
    last_sent: str | None = None
    announced_at: datetime = field(default_factory=utcnow)
    #: Who this stream has heard from: a newcomer is greeted once (see _on_presence).
    heard: set[int] = field(default_factory=set)

    def event(self, viewer: Viewer, state: str) -> dict[str, Any]:
        return presence.presence_event(state, self.conversation_id, self.team_id, viewer.id,
                                       viewer.display_name or viewer.username)


def presence_payload(room: Room, viewer: Viewer, now: datetime) -> str:
    people = room.board.who(room.conversation_id, now, besides=viewer.id)
    return json.dumps({"text": presence.describe(people),
                       "people": [{"name": p.name, "typing": p.typing} for p in people]})


async def _send_presence(sse: EventSourceResponse, room: Room, viewer: Viewer, now: datetime) -> None:
    """Only when the sentence changed: a heartbeat that changes nothing sends nothing."""
    data = presence_payload(room, viewer, now)
    if data != room.last_sent:
        room.last_sent = data
        await sse.send(data, event="presence")


def _on_presence(request: web.Request, event: dict[str, Any], room: Room | None, viewer: Viewer) -> bool:
    """Feed the board; True when this stream's room is concerned. Greets a newcomer once, so a
    viewer on another process shows up at once instead of at our next heartbeat (each stream
    keeps its own list of who it heard from, so two streams greet each other at most once)."""
    board_of(request.app).apply(event, utcnow())
    if room is None or event.get("conversation_id") != room.conversation_id:
        return False
    user_id = event.get("user_id")
    if event.get("state") == "left":
        room.heard.discard(user_id)
    elif user_id not in room.heard:
        room.heard.add(user_id)
        if user_id != viewer.id and event.get("state") == "viewing":
            request.app[CORE].hub.publish(room.event(viewer, "viewing"))
    return True


async def _forward(request: web.Request, sse: EventSourceResponse, queue: asyncio.Queue[dict[str, Any]],
                   viewer: Viewer, room: Room | None) -> None:
    tick = PRESENCE_TICK_SECONDS if room else None
    try:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), tick)
            except TimeoutError:
                await _heartbeat(request, sse, room, viewer)   # only with a room: tick is None otherwise
                continue
            if event.get("type") == "presence":
                if visible(event, viewer) and _on_presence(request, event, room, viewer):
                    await _send_presence(sse, room, viewer, utcnow())
                continue
            name = sse_name(event)
            if name is not None and visible(event, viewer):
                data = {k: event[k] for k in ("type", "conversation_id") if k in event}
                await sse.send(json.dumps(data), event=name)
    except (ConnectionResetError, RuntimeError, TimeoutError):
        return   # the browser went away; the handler notices and cleans up


async def _heartbeat(request: web.Request, sse: EventSourceResponse, room: Room | None, viewer: Viewer) -> None:
    assert room is not None
    now = utcnow()
    if now - room.announced_at >= timedelta(seconds=HEARTBEAT_SECONDS):
        room.announced_at = now
        request.app[CORE].hub.publish(room.event(viewer, "viewing"))
    await _send_presence(sse, room, viewer, now)


async def _room_of(request: web.Request, viewer: Viewer) -> Room | None:
    raw = request.query.get("conversation")
    if raw is None:
        return None
    if not raw.isdigit():
        raise web.HTTPBadRequest(text="conversation must be a conversation id (a number).")
    team_id = await queries.conversation_team(request.app[CORE].engine, int(raw))
    if team_id is None or not viewer.may_see_team(team_id):
        raise web.HTTPNotFound(text=NOT_FOUND)
    return Room(int(raw), team_id, board_of(request.app))


@routes.get("/events", name="events")
async def events(request: web.Request) -> web.StreamResponse:
    """One stream per open page; ends when the browser goes away or the server shuts down."""
    viewer = viewer_of(request)
    room = await _room_of(request, viewer)
    streams, hub = request.app[STREAMS], request.app[CORE].hub
    # Subscribe before the browser sees the stream open, so nothing published after that is missed.
    async with hub.subscribe() as queue, sse_response(
            request, ping_interval=HEARTBEAT_SECONDS,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}) as sse:
        streams.add(sse)
        if room:
            hub.publish(room.event(viewer, "viewing"))
        forward = asyncio.create_task(_forward(request, sse, queue, viewer, room))
        closed = asyncio.create_task(sse.wait())
        try:
            await asyncio.wait([forward, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            forward.cancel()
            closed.cancel()
            streams.discard(sse)
            if room:
                hub.publish(room.event(viewer, "left"))
    return sse


@routes.post(r"/conversations/{id:\d+}/typing", name="typing")
async def typing(request: web.Request) -> web.StreamResponse:
    """The viewer is typing a reply or note here. Browsers throttle; the server drops floods too."""
    viewer, conversation_id = viewer_of(request), int(request.match_info["id"])
    team_id = await queries.conversation_team(request.app[CORE].engine, conversation_id)
    if team_id is None or not viewer.may_see_team(team_id):
        raise web.HTTPNotFound(text=NOT_FOUND)
    hub, now = request.app[CORE].hub, utcnow()
    relayed = _typing_relayed.setdefault(hub, {})
    if len(relayed) > 10_000:   # bounded memory; forgetting only lets one extra event through
        relayed.clear()
    last = relayed.get((viewer.id, conversation_id))
    if last is None or now - last >= presence.TYPING_THROTTLE - timedelta(milliseconds=500):
        relayed[(viewer.id, conversation_id)] = now
        hub.publish(presence.presence_event("typing", conversation_id, team_id, viewer.id,
                                            viewer.display_name or viewer.username))
    return web.Response(status=204)


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every open stream, so stopping the server does not wait for browsers."""
    for sse in list(app[STREAMS]):
        sse.stop_streaming()
