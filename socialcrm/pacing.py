"""Per-channel send pacing: stay below the platform's allowed rate instead of collecting 429s.

A platform that allows N messages per second per account (WhatsApp: 80 per business phone
number by default) answers 429 beyond it; a dispatcher that sends as fast as it can spends
its time being refused and waiting out Retry-After. The `Pacer` spaces one channel's sends
`1 / rate` apart (the generic cell rate algorithm with no burst), so the platform's own
bucket never runs dry, and holds the channel until the time a rate limit named, never
earlier. The rate comes from the connector's capabilities (`send_rate_per_second`), or
from a channel setting of the same name, which wins (a number upgraded to 1,000/s, or one
shared with the WhatsApp Business app at 20/s).

The pacer lives in one process. Several processes never pace one channel at once: the
dispatcher sends for a channel only while it holds that channel's lock (see outbox.py).
`PacedSender` runs one channel's claimed replies through its pacer: each conversation's in
order, different conversations concurrently, so a platform that takes 300 ms to answer still
gets its 80 a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

#: Pace a little below the documented rate: clocks on both sides drift, and a platform that
#: counts over fixed windows sees our evenly spaced sends straddle its window edges.
SHARE_OF_ALLOWED = 0.97


def allowed_rate(connector: Any) -> float | None:
    """Sends per second the platform allows this channel; None when none is documented.

    A positive `send_rate_per_second` in the channel's settings overrides the connector's
    declared capability (the admin knows the account's tier; the connector knows the default)."""
    configured = getattr(getattr(connector, "settings", None), "send_rate_per_second", None)
    if isinstance(configured, int | float) and not isinstance(configured, bool) and configured > 0:
        return float(configured)
    declared = getattr(getattr(connector, "capabilities", None), "send_rate_per_second", None)
    return float(declared) if declared else None


class Pacer:
    """When may the next send of one channel start; shared by that channel's concurrent senders."""

    def __init__(self, rate: float | None, clock: Callable[[], datetime],
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.clock, self.sleep = clock, sleep
        self.rate = rate
        self.interval = timedelta(seconds=1 / (rate * SHARE_OF_ALLOWED)) if rate else timedelta(0)
        self.next_at: datetime | None = None     # the earliest start of the next send
        self.held_until: datetime | None = None  # the platform said: not before this

    def set_rate(self, rate: float | None) -> None:
        """The channel's settings changed; the schedule already promised stands."""
        if rate != self.rate:
            self.rate = rate
            self.interval = timedelta(seconds=1 / (rate * SHARE_OF_ALLOWED)) if rate else timedelta(0)

    def hold_until(self, until: datetime) -> None:
        """The platform refused us until `until`: nothing starts before it."""
        if self.held_until is None or until > self.held_until:
            self.held_until = until

    def is_held(self, beyond: timedelta = timedelta(0)) -> bool:
        """A platform's hold is still ahead (by more than `beyond`)."""
        return self.held_until is not None and self.held_until > self.clock() + beyond

    def _earliest(self) -> datetime:
        now = self.clock()
        return max(t for t in (now, self.next_at, self.held_until) if t is not None)

    def budget(self, horizon: timedelta, cap: int) -> int:
        """How many sends may start within `horizon` from now (at most `cap`): what to claim."""
        start = self._earliest()
        until = self.clock() + horizon
        if start > until:
            return 0
        if not self.interval:
            return cap
        return min(cap, 1 + int((until - start) / self.interval))

    def per(self, horizon: timedelta, cap: int) -> int:
        """How many sends fit in `horizon` at this rate (at most `cap`), wherever the schedule is."""
        return min(cap, max(1, int(horizon / self.interval))) if self.interval else cap

    def reserve(self) -> datetime:
        """Take the next slot; the caller starts its send at the returned time, not before."""
        at = self._earliest()
        self.next_at = at + self.interval
        return at

    async def wait_turn(self) -> None:
        """Reserve a slot and sleep until it comes."""
        delay = (self.reserve() - self.clock()).total_seconds()
        if delay > 0:
            await self.sleep(delay)


class PacedSender:
    """Sends one channel's claimed entries: each conversation's in order, different conversations
    concurrently (up to `in_flight`), every start paced. Entries claimed later join the running
    conversations, so claiming the next batch never waits for the slowest send of the last one.
    A send that returns False (rate limited, token rejected) stops it: what has not started is
    handed back by finish()."""

    def __init__(self, pacer: Pacer, deliver: Callable[[Any], Awaitable[bool]], chain_key: Callable[[Any], Any],
                 in_flight: int, on_raise: Callable[[Any], Any]) -> None:
        self.pacer, self.deliver, self.chain_key, self.on_raise = pacer, deliver, chain_key, on_raise
        self.gate = asyncio.Semaphore(in_flight)
        self.stopped = False
        self.waiting = 0                         # claimed, not yet started
        self._chains: dict[Any, list[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._unstarted: list[Any] = []
        self._progress = asyncio.Event()

    def add(self, entries: list[Any]) -> None:
        for entry in entries:
            key = self.chain_key(entry)
            self.waiting += 1
            if key in self._chains:
                self._chains[key].append(entry)  # its chain is running and will reach it
                continue
            self._chains[key] = [entry]
            self._tasks.append(asyncio.create_task(self._run(key)))

    async def _run(self, key: Any) -> None:
        queue = self._chains[key]
        try:
            while queue and not self.stopped:
                async with self.gate:
                    if not self.stopped:
                        await self.pacer.wait_turn()
                    if self.stopped or self.pacer.is_held():   # a 429 came while this one waited
                        self.stopped = True
                        break
                    entry = queue.pop(0)
                    self.waiting -= 1
                    self._progress.set()
                    try:
                        go_on = await self.deliver(entry)
                    except BaseException:
                        self.on_raise(entry)
                        raise
                if not go_on:
                    self.stopped = True
        finally:
            rest = self._chains.pop(key, [])
            self.waiting -= len(rest)
            self._unstarted.extend(rest)
            self._progress.set()

    async def wait_for_room(self, low_water: int) -> None:
        """Until at most `low_water` entries wait to start (or nothing runs, or it stopped)."""
        while self.waiting > low_water and not self.stopped and not all(t.done() for t in self._tasks):
            self._progress.clear()
            await self._progress.wait()

    async def finish(self) -> tuple[list[Any], list[BaseException]]:
        """Wait for every send; (entries never started, errors raised by sends)."""
        outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        return self._unstarted, errors
