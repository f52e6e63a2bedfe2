"""Raw webhook deliveries: stored durably before we acknowledge them, then ingested.

Two loops, each taking everything queued as soon as it is free (group commit, no timer):

* the store loop writes a batch of receipts in one transaction and only then resolves the
  webhook handlers' futures, so a 2xx always means "stored";
* the ingest loop applies a batch of stored receipts (ingest + routing) in one transaction
  and marks them processed. If a batch fails, each receipt is retried alone so one bad
  delivery cannot hold back the others; a receipt that still fails is marked failed with
  the reason and can be replayed after a fix.

At startup (and after a crash) `recover()` re-parses receipts still pending.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import coordination, ingest, models, routing
from socialcrm.channels import ChannelStore, LoadedChannel
from socialcrm.connector import Connector, NormalizedEvent, WebhookRequest
from socialcrm.db import unavailable
from socialcrm.errors import SendError, WebhookError
from socialcrm.live import Hub
from socialcrm.models import utcnow

log = logging.getLogger(__name__)
receipt_t = models.Receipt.__table__
channel_t = models.Channel.__table__
MAX_BATCH = 512
REDACTED_HEADERS = ("authorization", "cookie", "x-hub-signature", "x-hub-signature-256",
                    "x-twitter-webhooks-signature", "x-telegram-bot-api-secret-token", "x-simulator-signature",
                    "x-simulator-token")


class StoreFailed(Exception):
    """The receipt could not be stored: the webhook must answer 503 so the platform retries."""


def redact_headers(headers: Any) -> dict[str, str]:
    return {k: ("[redacted]" if k.lower() in REDACTED_HEADERS else v) for k, v in headers.items()}


@dataclass
class Delivery:
    channel: LoadedChannel
    headers: dict[str, str]
    body: bytes
    events: list[NormalizedEvent]
    receipt_id: int | None = None
    future: asyncio.Future[int] | None = field(default=None, repr=False)


class Pipeline:
    def __init__(self, engine: AsyncEngine, channels: ChannelStore, hub: Hub,
                 sync_engine: sa.Engine | None = None) -> None:
        self.engine, self.channels, self.hub, self.sync_engine = engine, channels, hub, sync_engine
        self._store_q: asyncio.Queue[Delivery] = asyncio.Queue()
        self._ingest_q: asyncio.Queue[Delivery] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.processed = 0
        #: Receipts queued or being ingested by this process; the sweep leaves them alone.
        self._inflight: set[int | None] = set()
        self.backlog = Backlog()

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        await self.recover()
        self._tasks = [asyncio.create_task(self._store_loop(), name="receipts-store"),
                       asyncio.create_task(self._ingest_loop(), name="receipts-ingest")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def wait_idle(self) -> None:
        """Until everything submitted so far is stored and ingested (tests, benchmarks, shutdown)."""
        while not self._idle.is_set() or not self._store_q.empty() or not self._ingest_q.empty():
            await self._idle.wait()
            await asyncio.sleep(0)

    # -- the webhook side -----------------------------------------------------------------
    async def submit(self, channel: LoadedChannel, req: WebhookRequest, events: list[NormalizedEvent]) -> int:
        """Queue a verified, parsed delivery; returns once it is durably stored (usually ingested
        too). The receipt id is returned for deliveries kept for the slow path, else 0."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._mark_busy()
        await self._store_q.put(Delivery(channel, redact_headers(req.headers), req.body, events, future=future))
        return await future

    def _mark_busy(self) -> None:
        self._busy += 1
        self._idle.clear()

    def _mark_done(self, n: int) -> None:
        self._busy -= n
        if self._busy <= 0:
            self._busy = 0
            self._idle.set()

    async def _store_loop(self) -> None:
        """SQLite: the one writer. Each batch is stored, ingested and routed in ONE transaction on
        a thread-side connection (one commit, no lock hand-offs between writers), then acknowledged.
        PostgreSQL: store, acknowledge, and ingest in the parallel ingest loop."""
        while True:
            batch = await _drain(self._store_q)
            if self.sync_engine is None:
                # PostgreSQL takes concurrent writers well and each statement is a round trip:
                # acknowledge once stored, and let the ingest loop work in parallel, but only as
                # far ahead of it as the backlog allows.
                await self.backlog.wait_for_room(self._ingest_q.qsize)
                await self._store_for_later(batch)
                continue
            fast = [d for d in batch if not _needs_fetch(d)]
            later = [d for d in batch if _needs_fetch(d)]
            try:
                touched, assigned = await self._store_and_ingest(fast, later)
            except Exception as exc:
                log.warning("batch of %d could not be ingested at once (%s); storing it first", len(batch), exc)
                await self._store_for_later(batch)
                continue
            for d in fast:
                _settle(d, 0)
            self._queue_for_later(later)
            self.processed += len(fast)
            self._mark_done(len(fast))
            self._publish(touched, assigned)

    async def _store_and_ingest(self, fast: Sequence[Delivery], later: Sequence[Delivery]) -> tuple[set, list]:
        now = utcnow()
        prepared = [Prepared(d, await self._by_channel(d)) for d in fast]
        if self.sync_engine is not None:  # SQLite: the whole batch in one worker-thread hop
            return await asyncio.to_thread(self._write_in_thread, prepared, later, now)
        async with self.engine.begin() as conn:
            return await conn.run_sync(_write_batch, prepared, later, now)

    def _write_in_thread(self, prepared: Sequence[Prepared], later: Sequence[Delivery], now: Any) -> tuple[set, list]:
        assert self.sync_engine is not None
        with self.sync_engine.begin() as conn:
            return _write_batch(conn, prepared, later, now)

    async def _insert_pending(self, conn: AsyncConnection, batch: Sequence[Delivery], now: Any) -> None:
        """Receipts for the store-first path, each told its id."""
        if not batch:
            return
        result = await conn.execute(receipt_t.insert().returning(receipt_t.c.id, sort_by_parameter_order=True),
                                    [_receipt_row(d, now, "pending") for d in batch])
        for d, receipt_id in zip(batch, result.scalars().all()):
            d.receipt_id = receipt_id

    async def _store_for_later(self, batch: Sequence[Delivery]) -> None:
        """Fallback: store the raw deliveries alone, acknowledge, and ingest them one by one."""
        try:
            async with self.engine.begin() as conn:
                await self._insert_pending(conn, batch, utcnow())
        except Exception as exc:  # database down or locked: 503, and the platform retries
            log.error("could not store %d webhook deliveries: %s", len(batch), exc)
            for d in batch:
                _settle(d, exc=StoreFailed(str(exc)))
            self._mark_done(len(batch))
            return
        self._queue_for_later(batch)

    def _queue_for_later(self, batch: Sequence[Delivery]) -> None:
        for d in batch:
            self._inflight.add(d.receipt_id)
            _settle(d, d.receipt_id)
            self._ingest_q.put_nowait(d)

    # -- the ingest side ------------------------------------------------------------------
    async def _ingest_loop(self) -> None:
        while True:
            batch = await _drain(self._ingest_q)
            self.backlog.started(len(batch))
            try:
                await self.ingest_batch(batch)
            except Exception:
                log.exception("ingest loop failed on a batch of %d", len(batch))
            finally:
                self.backlog.finished(len(batch))
                self._mark_done(len(batch))

    async def ingest_batch(self, batch: Sequence[Delivery]) -> None:
        try:
            touched, assigned = await self._ingest_all(await self._prepare(batch))
        finally:
            for d in batch:   # whatever is still pending is the sweep's from now on
                self._inflight.discard(d.receipt_id)
        self.processed += len(batch)
        self._publish(touched, assigned)

    async def _ingest_all(self, ready: Sequence[Prepared]) -> tuple[set[tuple[int, int]], list[Any]]:
        """One transaction; if it fails, one per receipt, so one bad delivery cannot hold back the
        others. A database that is down or locked fails none of them: they stay pending."""
        try:
            return await self._ingest_in_one_transaction(ready)
        except Exception as exc:
            if unavailable(exc):
                log.warning("database unavailable; %d receipts stay pending for the sweep: %s", len(ready), exc)
                return set(), []
            log.warning("batch of %d failed (%s); retrying one by one", len(ready), exc)
        touched: set[tuple[int, int]] = set()
        assigned: list[Any] = []
        for one in ready:
            try:
                t, a = await self._ingest_in_one_transaction([one])
                touched |= t
                assigned += a
            except Exception as one_exc:
                if unavailable(one_exc):
                    log.warning("database unavailable; receipt %s stays pending: %s", one.delivery.receipt_id, one_exc)
                    continue
                log.exception("receipt %s failed", one.delivery.receipt_id)
                await self._mark_failed(one.delivery.receipt_id, one_exc)
        return touched, assigned

    async def _prepare(self, batch: Sequence[Delivery]) -> list[Prepared]:
        """Route events to their channels and let connectors fetch what webhooks leave out.

        A delivery whose fetch fails stays pending (with the reason) and the sweep retries it."""
        ready = []
        for d in batch:
            try:
                parts = [(ch, await ch.connector.hydrate(evs)) for ch, evs in await self._by_channel(d)]
            except SendError as exc:
                await self._note_deferred(d.receipt_id, exc)
                continue
            ready.append(Prepared(d, parts))
        return ready

    async def _ingest_in_one_transaction(self, ready: Sequence[Prepared]) -> tuple[set[tuple[int, int]], list[Any]]:
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await self._apply(conn, ready, now)
            ids = [one.delivery.receipt_id for one in ready if one.delivery.receipt_id is not None]
            if ids:
                await conn.execute(receipt_t.update().where(receipt_t.c.id.in_(ids))
                                   .values(status="processed", processed_at=now, error=""))
        return result

    async def _apply(self, conn: AsyncConnection, ready: Sequence[Prepared], now: Any) -> tuple[set, list]:
        return await conn.run_sync(_apply_sync, ready, now)

    async def _by_channel(self, d: Delivery) -> list[tuple[LoadedChannel, list[NormalizedEvent]]]:
        """Route each event to its channel by platform account id (one Meta app, many pages)."""
        out: dict[int, tuple[LoadedChannel, list[NormalizedEvent]]] = {}
        for event in d.events:
            channel = d.channel
            if event.account_id and event.account_id != channel.row.account_id:
                found = await self.channels.by_account(channel.row.connector, event.account_id)
                if found is None:
                    log.warning("event for unknown %s account %s skipped", channel.row.connector, event.account_id)
                    continue
                channel = found
            out.setdefault(channel.id, (channel, []))[1].append(event)
        return list(out.values())

    async def _mark_failed(self, receipt_id: int | None, exc: Exception) -> None:
        if receipt_id is None:
            return
        async with self.engine.begin() as conn:
            await conn.execute(receipt_t.update().where(receipt_t.c.id == receipt_id)
                               .values(status="failed", error=f"{type(exc).__name__}: {exc}"[:500]))

    def _publish(self, touched: set[tuple[int, int]], assigned: list[routing.Assigned]) -> None:
        teams = {team for _, team in touched} | {a.team_id for a in assigned}
        for conv_id, team in touched | {(a.conversation_id, a.team_id) for a in assigned}:
            self.hub.publish({"type": "conversation", "conversation_id": conv_id, "team_id": team})
        for team in teams:
            self.hub.publish({"type": "inbox", "team_id": team})

    async def _note_deferred(self, receipt_id: int | None, exc: Exception) -> None:
        log.warning("receipt %s deferred: %s", receipt_id, exc)
        async with self.engine.begin() as conn:
            await conn.execute(receipt_t.update().where(receipt_t.c.id == receipt_id)
                               .values(error=f"will retry: {exc}"[:500]))

    # -- recovery and replay ------------------------------------------------------------
    async def sweep(self, older_than: timedelta = timedelta(seconds=60)) -> int:
        """Re-queue pending receipts nobody here is working on: deferred fetches, a crashed peer."""
        async with self.engine.connect() as conn:
            ids = (await conn.execute(sa.select(receipt_t.c.id).where(
                receipt_t.c.status == "pending", receipt_t.c.received_at < utcnow() - older_than)
                .order_by(receipt_t.c.id).limit(MAX_BATCH))).scalars().all()
        todo = [i for i in ids if i not in self._inflight]
        for receipt_id in todo:
            await self.replay(receipt_id, wait=False)
        return len(todo)

    async def recover(self) -> int:
        """Re-queue receipts that were acknowledged but not processed (a crash, a restart)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(receipt_t.c.id).where(receipt_t.c.status == "pending")
                                       .order_by(receipt_t.c.id))).all()
        for row in rows:
            await self.replay(row.id, wait=False)
        return len(rows)

    async def replay(self, receipt_id: int, wait: bool = True) -> None:
        """Parse a stored delivery again with its channel's connector and ingest it."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(receipt_t).where(receipt_t.c.id == receipt_id))).one()
        channel = await self.channels.get(row.channel_id)
        if channel is None:
            await self._mark_failed(receipt_id, LookupError("channel no longer exists"))
            return
        req = WebhookRequest.build("POST", "/", row.headers, {}, row.body)
        try:
            events = channel.connector.parse(req)
        except WebhookError as exc:
            await self._mark_failed(receipt_id, exc)
            return
        self._mark_busy()
        self._inflight.add(receipt_id)
        self._ingest_q.put_nowait(Delivery(channel, row.headers, row.body, events, receipt_id=receipt_id))
        if wait:
            await self.wait_idle()


def _write_batch(conn: Connection, prepared: Sequence[Prepared], later: Sequence[Delivery],
                 now: Any) -> tuple[set, list]:
    """Store the batch's receipts, ingest the ready ones per channel, route: one transaction."""
    if prepared:
        conn.execute(receipt_t.insert(), [_receipt_row(p.delivery, now, "processed") for p in prepared])
    for d in later:
        d.receipt_id = conn.execute(receipt_t.insert().values(**_receipt_row(d, now, "pending"))
                                    .returning(receipt_t.c.id)).scalar_one()
    return _apply_sync(conn, prepared, now)


def _apply_sync(conn: Connection, ready: Sequence[Prepared], now: Any) -> tuple[set, list]:
    """All events of the batch, one ingest call per channel (the bulk path), then routing.

    Several processes: each channel's ingest is serialised by a lock held to the commit, taken
    in channel order. Two processes' batches of one busy channel touch the same contacts and
    conversations in different orders; without it they deadlock, and PostgreSQL's resolution
    (abort one, retry it receipt by receipt) cut the ingest rate of two workers to a fifth."""
    per_channel: dict[int, tuple[LoadedChannel, list[NormalizedEvent]]] = {}
    for one in ready:
        for channel, events in one.parts:
            per_channel.setdefault(channel.id, (channel, []))[1].extend(events)
    touched: set[tuple[int, int]] = set()
    for channel_id in sorted(per_channel):
        coordination.xact_lock_sync(conn, "ingest", channel_id)
    for channel, events in per_channel.values():
        result = ingest.apply_sync(conn, channel.info, events, now)
        touched |= {(cid, channel.info.team_id) for cid in result.conversations}
    if per_channel:
        conn.execute(channel_t.update().where(channel_t.c.id.in_(list(per_channel))).values(last_event_at=now))
    assigned = routing.route_sync(conn, now) if touched else []
    return touched, assigned


def _needs_fetch(d: Delivery) -> bool:
    """Connectors that fetch more after the webhook (hydrate) take the store-first slow path,
    so no platform call ever runs inside the writer's transaction or delays other deliveries."""
    return type(d.channel.connector).hydrate is not Connector.hydrate


def _receipt_row(d: Delivery, now: Any, status: str) -> dict[str, Any]:
    return {"connector": d.channel.row.connector, "channel_id": d.channel.id, "received_at": now,
            "headers": d.headers, "body": d.body, "status": status, "events": len(d.events), "error": "",
            "processed_at": now if status == "processed" else None}


def _settle(d: Delivery, receipt_id: int | None = None, exc: Exception | None = None) -> None:
    if d.future is None or d.future.done():
        return  # the webhook request was cancelled (client went away); the receipt stands
    if exc is not None:
        d.future.set_exception(exc)
    else:
        d.future.set_result(receipt_id)


class Backlog:
    """How far acknowledgements may run ahead of ingest (PostgreSQL, where they are separate).

    In a burst the webhook side acknowledges faster than one channel can be ingested; an
    unbounded queue then makes acknowledged messages reach the inbox later and later (12 s
    behind after a 5,000-delivery burst on two cores). So the store loop waits while the
    queue holds more than BACKLOG_SECONDS of ingest work at the rate measured: the platform
    waits a little longer for its 200 (or retries), and what was acknowledged is in the inbox
    within about a second. The batch being ingested does not count: storing the next batch
    while this one is ingested keeps both loops busy (waiting for it halved the ingest rate)."""

    BACKLOG_SECONDS = 0.2
    MIN_ROOM = 32

    def __init__(self) -> None:
        self.rate = 400.0          # deliveries/s, a moving average of the batches ingested
        self._started_at = 0.0
        self._room = asyncio.Event()
        self._room.set()

    def room(self) -> int:
        return max(self.MIN_ROOM, int(self.rate * self.BACKLOG_SECONDS))

    async def wait_for_room(self, queued: Callable[[], int]) -> None:
        while queued() >= self.room():
            self._room.clear()
            await self._room.wait()

    def started(self, n: int) -> None:
        self._started_at = time.perf_counter()
        self._room.set()              # the queue was just taken: room again

    def finished(self, n: int) -> None:
        elapsed = max(time.perf_counter() - self._started_at, 1e-3)
        self.rate = 0.8 * self.rate + 0.2 * (n / elapsed)


@dataclass
class Prepared:
    """A stored delivery with its events routed to channels and hydrated, ready to ingest."""

    delivery: Delivery
    parts: list[tuple[LoadedChannel, list[NormalizedEvent]]]


async def _drain(queue: asyncio.Queue[Delivery]) -> list[Delivery]:
    batch = [await queue.get()]
    while not queue.empty() and len(batch) < MAX_BATCH:
        batch.append(queue.get_nowait())
    return batch


async def ingest_events(conn: AsyncConnection, channel: LoadedChannel, events: list[NormalizedEvent]) -> Any:
    """Polled events take the same path as webhook ones, inside the poller's transaction."""
    await conn.run_sync(coordination.xact_lock_sync, "ingest", channel.id)
    result = await ingest.apply(conn, channel.info, events)
    assigned = await routing.route(conn) if result.conversations else []
    return result, assigned
