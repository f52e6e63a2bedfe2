"""Typed application state keys (aiohttp `web.AppKey`): one place, no string keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from socialcrm.config import Settings
from socialcrm.users import Viewer

if TYPE_CHECKING:
    from aiohttp_sse import EventSourceResponse

    from socialcrm.core import Core

SETTINGS = web.AppKey("settings", Settings)
CORE: web.AppKey[Core] = web.AppKey("core")
#: Open server-sent-event streams, closed on shutdown so the server stops without waiting.
STREAMS: web.AppKey[set[EventSourceResponse]] = web.AppKey("streams")
#: Whether the app created the Core itself (and must stop it) or was given one.
OWNS_CORE = web.AppKey("owns_core", bool)
#: The signed-in user of this request (None on public paths), set by the auth middleware.
VIEWER: web.RequestKey[Viewer | None] = web.RequestKey("viewer")
