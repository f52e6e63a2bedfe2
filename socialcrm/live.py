"""Publish/subscribe of UI events; browsers receive them as server-sent events.

Events are small dicts: {"type": "conversation", "conversation_id": 7, "team_id": 1}. The
web layer decides which subscriber may see which event (team membership) and what to
re-render; publishers never wait for slow browsers (a full queue drops the oldest event,
the browser re-fetches the whole list on the next one anyway).

On SQLite (one process) the Hub is in-process. On PostgreSQL `PgHub` also crosses processes
and machines with LISTEN/NOTIFY, so an agent connected to process 1 sees what process 2
received: an event is delivered to local subscribers at once and sent with NOTIFY, tagged
with this hub's origin; every hub LISTENs on one dedicated connection and delivers what the
others sent (its own notifications come back too and are dropped by their origin, so nothing
is delivered twice). The connection is re-opened with backoff when PostgreSQL goes away;
events published meanwhile reach only this process (they are hints to re-fetch, not data).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)
QUEUE_SIZE = 256
#: The NOTIFY channel all processes of one database share.
CHANNEL = "socialcrm_live"
#: How the listening connection shows in pg_stat_activity.
APP_NAME = "socialcrm-live"
#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD = 7900
OUTGOING_MAX = 10_000
SEND_BATCH = 500
KEEPALIVE_SECONDS = 10.0
BACKOFF_FIRST, BACKOFF_CAP = 0.2, 5.0


class Hub:
    """In-process: the single-process (SQLite) default, and the local half of PgHub."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    async def start(self) -> None:
        """Nothing to connect in one process."""

    async def stop(self) -> None:
        """Nothing to close in one process."""

    def publish(self, event: dict[str, Any]) -> None:
        self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


def hub_for(database_url: str) -> Hub:
    """PgHub on PostgreSQL, where several processes may share the database; Hub otherwise."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return Hub()
    return PgHub(url.set(drivername="postgresql").render_as_string(hide_password=False))


class PgHub(Hub):
    """Hub that also reaches the hubs of other processes through LISTEN/NOTIFY."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self.origin = uuid.uuid4().hex[:12]
        self._outgoing: asyncio.Queue[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsent: list[str] = []
        self.connected = asyncio.Event()
        #: Connections opened so far (1 while the first lasts), for health checks and tests.
        self.connections = 0

    async def start(self, wait: float = 5.0) -> None:
        """Start listening; waits (up to `wait` s) for the connection, so events published by other
        processes right after start are not missed. A database that is down does not stop start."""
        self._outgoing = asyncio.Queue(OUTGOING_MAX)
        self._task = asyncio.create_task(self._run(), name="live-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), wait)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def publish(self, event: dict[str, Any]) -> None:
        self._deliver(event)
        if self._outgoing is None:
            return
        payload = json.dumps({"o": self.origin, "e": event}, separators=(",", ":"), default=str)
        if len(payload.encode()) > MAX_PAYLOAD:
            log.warning("live event of type %s too large for NOTIFY; delivered in this process only",
                        event.get("type"))
            return
        if self._outgoing.full():
            self._outgoing.get_nowait()   # keep the newest: they are hints, the latest matters
        self._outgoing.put_nowait(payload)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("o") != self.origin and isinstance(message.get("e"), dict):
            self._deliver(message["e"])

    async def _run(self) -> None:
        """Listen and send until stopped; on a lost connection, log once, retry with backoff, log
        once on recovery."""
        import asyncpg  # PostgreSQL only

        delay, lost = BACKOFF_FIRST, False
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5, server_settings={"application_name": APP_NAME})
                await conn.add_listener(CHANNEL, self._on_notify)
                self.connections += 1
                self.connected.set()
                if lost:
                    log.info("live events across processes recovered")
                delay, lost = BACKOFF_FIRST, False
                await self._send_until_closed(conn)
            except Exception as exc:   # refused, reset, PostgreSQL restarting: all mean "try again"
                if not lost:
                    log.warning("live events across processes lost (%s: %s); retrying",
                                type(exc).__name__, exc)
                lost = True
            finally:
                self.connected.clear()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(BACKOFF_CAP, delay * 2)

    async def _send_until_closed(self, conn: Any) -> None:
        """Send queued events in batches (one round trip each) until the connection closes; ping
        when idle so a silently dropped connection is noticed."""
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _c: closed.set())
        while not closed.is_set():
            batch = self._unsent or await self._next_batch(closed)
            if batch:
                self._unsent = batch   # sent again on the next connection if this one fails now
                await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, batch)
                self._unsent = []
            elif not closed.is_set():
                await conn.execute("SELECT 1")
        raise ConnectionError("the connection was closed")

    async def _next_batch(self, closed: asyncio.Event) -> list[str]:
        """Queued payloads, waiting up to KEEPALIVE_SECONDS for the first; [] when none came."""
        assert self._outgoing is not None
        batch: list[str] = []
        if self._outgoing.empty():
            getter = asyncio.ensure_future(self._outgoing.get())
            closer = asyncio.ensure_future(closed.wait())
            try:
                await asyncio.wait({getter, closer}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closer.cancel()
                if not getter.done():
                    getter.cancel()   # the item stays queued: Queue.get is safe to cancel
            if not getter.done() or getter.cancelled():
                return []
            batch.append(getter.result())
        while not self._outgoing.empty() and len(batch) < SEND_BATCH:
            batch.append(self._outgoing.get_nowait())
        return batch
