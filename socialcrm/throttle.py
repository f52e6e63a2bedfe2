"""Login throttling: too many failed sign-ins for one username lock it for a while.

One row per username tried (whether or not the account exists, so the answer never tells),
holding the failures in the current window and, once locked, until when. A compact counter
rather than a log of attempts: its size is bounded by the names tried, lookups are one primary
key read, and nothing has to prune it. While locked, even the right password is refused (429);
after the cool-down it works again, and any successful sign-in deletes the row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models

throttle_t = models.LoginThrottle.__table__
KEY_LENGTH = 100


@dataclass(frozen=True)
class State:
    failures: int
    window_started_at: datetime
    locked_until: datetime | None


def key(username: str) -> str:
    """Case-insensitive, bounded: 'Ana' and 'ana ' count against the same lock."""
    return username.strip().lower()[:KEY_LENGTH]


def seconds_left(locked_until: datetime | None, now: datetime) -> int:
    """Whole seconds until the lock ends (rounded up), 0 when not locked."""
    if locked_until is None or locked_until <= now:
        return 0
    return math.ceil((locked_until - now).total_seconds())


def in_words(seconds: int) -> str:
    """'Try again in 15 minutes.' / 'in 40 seconds' for the 429 page."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@dataclass(frozen=True)
class Throttle:
    """The policy and its clock; tests hand in a fixed clock."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    cooldown: timedelta = timedelta(minutes=15)
    clock: Callable[[], datetime] = models.utcnow

    def next_state(self, current: State | None, now: datetime) -> State:
        """The state after one more failure: a new window once the old one (or a lock) is over."""
        fresh = (current is None or now - current.window_started_at >= self.window
                 or (current.locked_until is not None and current.locked_until <= now))
        failures = 1 if fresh else current.failures + 1
        started = now if fresh else current.window_started_at
        locked = now + self.cooldown if failures >= self.max_failures else None
        return State(failures, started, locked)

    async def wait(self, engine: AsyncEngine, username: str) -> int:
        """Seconds this username must still wait before trying again; 0 to go ahead."""
        async with engine.connect() as conn:
            state = await _load(conn, key(username))
        return seconds_left(state.locked_until if state else None, self.clock())

    async def failed(self, engine: AsyncEngine, username: str) -> int:
        """Count a failed sign-in; returns the seconds to wait if this one locked the name."""
        now = self.clock()
        async with engine.begin() as conn:
            state = self.next_state(await _load(conn, key(username), lock=True), now)
            await _save(conn, key(username), state)
        return seconds_left(state.locked_until, now)

    async def succeeded(self, engine: AsyncEngine, username: str) -> None:
        """A successful sign-in forgets earlier failures."""
        async with engine.begin() as conn:
            await conn.execute(sa.delete(throttle_t).where(throttle_t.c.username == key(username)))


async def _load(conn: AsyncConnection, name: str, lock: bool = False) -> State | None:
    query = sa.select(throttle_t).where(throttle_t.c.username == name)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return None if row is None else State(row.failures, row.window_started_at, row.locked_until)


async def _save(conn: AsyncConnection, name: str, state: State) -> None:
    """Upsert: two first failures at once must not collide on the primary key."""
    values = {"failures": state.failures, "window_started_at": state.window_started_at,
              "locked_until": state.locked_until}
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(throttle_t).values(username=name, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[throttle_t.c.username], set_=values))
