"""The stored SLA setup: targets per channel and visibility, business hours per team.

Everything that turns the event log into clocks (metrics.timeline) takes a `metrics.SlaPolicy`;
this module is where those policies come from. `load_sla_setup` reads the whole setup in three
queries (it is small: a row per channel, visibility and team), so a dashboard over thousands of
conversations never asks the database per conversation. Ingest reads it through `cached_setup_sync`,
which keeps one copy per engine and reloads it when an edit here invalidates it or after MAX_AGE
(edits made by another process).

Where a number lives:
- first response: Channel.sla_public_minutes / sla_private_minutes (the channel page edits them too);
- next response and resolution: ChannelSla, per channel and visibility;
- business hours, time zone, holidays, 24/7, at-risk share: TeamCalendar, per team.
Anything not stored falls back to DEFAULTS: a team without a calendar works 24/7 in Europe/Oslo,
which is how deadlines were counted before calendars existed.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import available_timezones

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from socialcrm import audit, models
from socialcrm.calendars import BusinessCalendar, norwegian_holidays, swedish_holidays
from socialcrm.db import insert
from socialcrm.metrics import Event, SlaPolicy, Timeline, event_from_row, reached_at, running_response, timeline
from socialcrm.sla import AT_RISK_BAND, PRIVATE_BAND, PUBLIC_BAND, Deadline, row_values

channel_t = models.Channel.__table__
channel_sla_t = models.ChannelSla.__table__
calendar_t = models.TeamCalendar.__table__

DEFAULT_TZ = "Europe/Oslo"
DEFAULT_AT_RISK = 0.8


@dataclass(frozen=True)
class Targets:
    """Minutes for one channel and visibility."""

    first_response: int
    next_response: int
    resolution: int


@dataclass(frozen=True)
class Defaults:
    """Targets when nothing is stored: public posts fastest, private messages within 4 h.

    Next response defaults to the first-response target (a customer who writes again waits as
    long as a new one); resolution to a day for public posts and three for private ones.
    """

    first_public: int = 60
    first_private: int = 240
    resolution_public: int = 24 * 60
    resolution_private: int = 72 * 60

    def targets(self, public: bool, first: int | None = None) -> Targets:
        first = first or (self.first_public if public else self.first_private)
        return Targets(first, first, self.resolution_public if public else self.resolution_private)

    @classmethod
    def from_settings(cls, settings: Any) -> Defaults:
        """SOCIALCRM_SLA_PUBLIC_MINUTES / _PRIVATE_MINUTES, the defaults the channel store uses too."""
        return cls(first_public=settings.sla_public_minutes, first_private=settings.sla_private_minutes)


DEFAULTS = Defaults()
_engine_defaults: weakref.WeakKeyDictionary[Any, Defaults] = weakref.WeakKeyDictionary()


def use_defaults(engine: Any, defaults: Defaults) -> None:
    """Make every setup loaded through this engine fall back to these (the Core calls it once at
    start with Defaults.from_settings), so deadlines, timelines and figures agree with ingest."""
    _engine_defaults[getattr(engine, "sync_engine", engine)] = defaults
    invalidate()


def _defaults_for(conn: Any) -> Defaults:
    engine = conn.sync_engine if isinstance(conn, AsyncConnection) else conn.engine
    return _engine_defaults.get(engine, DEFAULTS)
ALWAYS_OPEN = BusinessCalendar(tz=DEFAULT_TZ, always_open=True)


@dataclass(frozen=True)
class ChannelTargets:
    team_id: int
    public: Targets
    private: Targets


@dataclass(frozen=True)
class SlaSetup:
    """Everything needed to turn any conversation's events into clocks; a value, safe to share."""

    channels: Mapping[int, ChannelTargets] = field(default_factory=dict)
    calendars: Mapping[int, BusinessCalendar] = field(default_factory=dict)
    at_risk: Mapping[int, float] = field(default_factory=dict)
    defaults: Defaults = DEFAULTS

    def calendar(self, team_id: int) -> BusinessCalendar:
        return self.calendars.get(team_id, ALWAYS_OPEN)

    def at_risk_fraction(self, team_id: int) -> float:
        return self.at_risk.get(team_id, DEFAULT_AT_RISK)

    def targets(self, channel_id: int, public: bool) -> Targets:
        found = self.channels.get(channel_id)
        if found is None:
            return self.defaults.targets(public)
        return found.public if public else found.private

    def team_of(self, channel_id: int) -> int | None:
        found = self.channels.get(channel_id)
        return found.team_id if found else None

    def policy(self, channel_id: int, public: bool) -> SlaPolicy:
        """The policy of a channel and visibility, with its team's calendar inside."""
        return self.policy_in_team(self.team_of(channel_id), channel_id, public)

    def policy_in_team(self, team_id: int | None, channel_id: int, public: bool,
                       first_response_minutes: int | None = None) -> SlaPolicy:
        """For callers that know the team (and the first target) better than this copy: ingest."""
        t = self.targets(channel_id, public)
        team = team_id if team_id is not None else -1
        return SlaPolicy(first_response_minutes or t.first_response, t.next_response, t.resolution,
                         self.calendar(team), self.at_risk_fraction(team))


# -- loading ------------------------------------------------------------------------------

def calendar_from_row(row: Any) -> BusinessCalendar:
    """A stored TeamCalendar row as the value the arithmetic uses."""
    hours = {int(day): [tuple(iv) for iv in ivs] for day, ivs in (row.hours or {}).items()}
    holidays = frozenset(date.fromisoformat(d) for d in (row.holidays or []))
    return BusinessCalendar(tz=row.tz, hours=hours, holidays=holidays, always_open=bool(row.always_open))


def _setup_from_rows(channels: list[Any], overrides: list[Any], calendars: list[Any],
                     defaults: Defaults) -> SlaSetup:
    extra = {(r.channel_id, bool(r.public)): r for r in overrides}

    def targets(ch: Any, public: bool) -> Targets:
        first = ch.sla_public_minutes if public else ch.sla_private_minutes
        base = defaults.targets(public, first)
        row = extra.get((ch.id, public))
        if row is None:
            return base
        return Targets(base.first_response, row.next_response_minutes or base.first_response,
                       row.resolution_minutes or base.resolution)

    return SlaSetup(
        channels={ch.id: ChannelTargets(ch.team_id, targets(ch, True), targets(ch, False)) for ch in channels},
        calendars={r.team_id: calendar_from_row(r) for r in calendars},
        at_risk={r.team_id: float(r.at_risk_fraction) for r in calendars},
        defaults=defaults)


def _queries() -> tuple[Any, Any, Any]:
    return (sa.select(channel_t.c.id, channel_t.c.team_id, channel_t.c.sla_public_minutes,
                      channel_t.c.sla_private_minutes),
            sa.select(channel_sla_t), sa.select(calendar_t))


async def load_sla_setup(conn: AsyncConnection, defaults: Defaults | None = None) -> SlaSetup:
    """The whole stored setup in three queries, with the defaults where nothing is stored."""
    rows = [(await conn.execute(q)).all() for q in _queries()]
    return _setup_from_rows(*rows, defaults or _defaults_for(conn))


def load_sla_setup_sync(conn: Connection, defaults: Defaults | None = None) -> SlaSetup:
    rows = [conn.execute(q).all() for q in _queries()]
    return _setup_from_rows(*rows, defaults or _defaults_for(conn))


# -- the copy ingest reads ------------------------------------------------------------------

MAX_AGE = 30.0
_cache: weakref.WeakKeyDictionary[Any, tuple[float, SlaSetup]] = weakref.WeakKeyDictionary()


def cached_setup_sync(conn: Connection) -> SlaSetup:
    """One load per engine every MAX_AGE seconds at most: no query per event on the ingest path."""
    engine = conn.engine
    hit = _cache.get(engine)
    if hit is not None and time.monotonic() - hit[0] < MAX_AGE:
        return hit[1]
    setup = load_sla_setup_sync(conn)
    _cache[engine] = (time.monotonic(), setup)
    return setup


def invalidate() -> None:
    """After an edit: every engine in this process reloads on its next use."""
    _cache.clear()


# -- deadlines from the event log -------------------------------------------------------------

conversation_t = models.Conversation.__table__
event_t = models.ConversationEvent.__table__
identity_t = models.Identity.__table__


def events_of_sync(conn: Connection, conversation_ids: Iterable[int]) -> dict[int, list[Event]]:
    """The logs of a few conversations in one query (not one per conversation)."""
    ids = sorted(set(conversation_ids))
    found: dict[int, list[Event]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = conn.execute(sa.select(event_t).where(event_t.c.conversation_id.in_(ids)).order_by(event_t.c.id)).all()
    for row in rows:
        found[row.conversation_id].append(event_from_row(row))
    return found


def deadline_of(tl: Timeline) -> Deadline | None:
    """The running response clock as the row stores it; None while nobody waits or it is paused."""
    clock = running_response(tl)
    if clock is None or clock.due_at is None:
        return None
    return Deadline(clock.started_at, clock.due_at, reached_at(tl, clock, tl.policy.at_risk_fraction))


def clock_values(events: list[Event], policy: SlaPolicy, public: bool, followers: int | None,
                 now: datetime) -> dict[str, Any]:
    """waiting_since, sla_due_at, sla_risk_at and priority of a conversation, from its log."""
    return row_values(deadline_of(timeline(events, policy, now)), public, followers, now)


def _refresh_rows(conn: Connection, where: Any, setup: SlaSetup, now: datetime) -> dict[int, dict[str, Any]]:
    """Recompute and store the deadlines of the conversations `where` selects, from their logs."""
    c = conversation_t.c
    convs = conn.execute(sa.select(c.id, c.channel_id, c.team_id, c.public, identity_t.c.followers)
                         .join(identity_t, identity_t.c.id == c.identity_id).where(where)).all()
    logs = events_of_sync(conn, [conv.id for conv in convs])
    done = {}
    for conv in convs:
        policy = setup.policy_in_team(conv.team_id, conv.channel_id, conv.public)
        done[conv.id] = clock_values(logs[conv.id], policy, conv.public, conv.followers, now)
        conn.execute(conversation_t.update().where(c.id == conv.id).values(**done[conv.id]))
    return done


def refresh_sync(conn: Connection, conversation_id: int, now: datetime) -> dict[str, Any]:
    """Recompute one conversation's deadline from its log and store it (reopen, end of a pause)."""
    return _refresh_rows(conn, conversation_t.c.id == conversation_id, cached_setup_sync(conn), now)[conversation_id]


async def refresh(conn: AsyncConnection, conversation_id: int, now: datetime) -> dict[str, Any]:
    return await conn.run_sync(refresh_sync, conversation_id, now)


REFRESH_CHUNK = 500


def refresh_waiting_sync(conn: Connection, where: Any, now: datetime) -> int:
    """After a target or calendar edit: the open deadlines it touches, recounted under the stored
    setup as it is now in this transaction (a rare admin action; done in chunks, not per row)."""
    c = conversation_t.c
    ids = list(conn.execute(sa.select(c.id).where(where, c.status == models.OPEN, c.waiting_since.is_not(None))
                            .order_by(c.id)).scalars())
    setup = load_sla_setup_sync(conn)
    for start in range(0, len(ids), REFRESH_CHUNK):
        _refresh_rows(conn, c.id.in_(ids[start:start + REFRESH_CHUNK]), setup, now)
    return len(ids)


# -- crossing the at-risk threshold ----------------------------------------------------------

RAISE_BATCH = 500


@dataclass(frozen=True)
class Raised:
    conversation_id: int
    team_id: int
    public: bool
    assignee_id: int | None


async def raise_at_risk(conn: AsyncConnection, now: datetime) -> list[Raised]:
    """Lift conversations whose clock has just reached the at-risk share into the raised band.

    The candidates are the open, waiting, not yet raised ones: a priority range on the queue
    index. Raising adds AT_RISK_BAND, which keeps their order among themselves.
    """
    c = conversation_t.c
    candidates = (sa.select(c.id).where(c.status == models.OPEN, c.priority > 0, c.priority < PUBLIC_BAND,
                                        c.sla_risk_at <= now).limit(RAISE_BATCH).scalar_subquery())
    rows = (await conn.execute(conversation_t.update().where(c.id.in_(candidates), c.priority < PUBLIC_BAND)
                               .values(priority=c.priority + AT_RISK_BAND)
                               .returning(c.id, c.team_id, c.public, c.assignee_id))).all()
    return [Raised(r.id, r.team_id, bool(r.public), r.assignee_id) for r in rows]


async def public_alerts(conn: AsyncConnection, team_ids: Iterable[int] | None, limit: int = 5) -> list[Any]:
    """Unassigned public posts at risk or overdue, most urgent first (the leads' banner).

    Raised public priorities start at AT_RISK_BAND + PRIVATE_BAND, above every raised private
    one, so this reads the unassigned index from the top and stops after `limit` rows.
    """
    c = conversation_t.c
    where = [c.status == models.OPEN, c.assignee_id.is_(None), c.priority >= AT_RISK_BAND + PRIVATE_BAND]
    if team_ids is not None:
        where.append(c.team_id.in_(sorted(team_ids) or [-1]))
    stmt = (sa.select(c.id, c.team_id, c.sla_due_at, c.last_message_preview).where(*where)
            .order_by(c.priority.desc(), c.waiting_since.asc(), c.id.asc()).limit(limit))
    return list((await conn.execute(stmt)).all())


async def raise_and_announce(engine: Any, publish: Any, now: datetime) -> list[Raised]:
    """The SLA tick's part: raise what crossed the threshold and tell the inboxes of those teams
    (the leads' banner re-reads `public_alerts` on the same "inbox" event)."""
    async with engine.begin() as conn:
        raised = await raise_at_risk(conn, now)
    for team in sorted({r.team_id for r in raised}):
        publish({"type": "inbox", "team_id": team})
    return raised


# -- editing (the settings pages) -------------------------------------------------------------

class SlaRejected(ValueError):
    """Bad settings, in words the lead can act on; nothing was stored."""


MAX_TARGET_MINUTES = 60 * 24 * 60   # 60 days: anything longer is a typo, not a promise
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class CalendarSettings:
    """A team's calendar as the form edits it; `validated()` turns it into the arithmetic's value."""

    tz: str = DEFAULT_TZ
    always_open: bool = True
    hours: Mapping[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    at_risk_fraction: float = DEFAULT_AT_RISK

    def validated(self) -> BusinessCalendar:
        if self.tz not in available_zones():
            raise SlaRejected(f'"{self.tz}" is not a time zone we know; use a name like Europe/Oslo.')
        if not 0 < self.at_risk_fraction < 1:
            raise SlaRejected("The at-risk share must be between 1 and 99 percent of the target.")
        if not self.always_open and not any(self.hours.values()):
            raise SlaRejected("Give opening hours for at least one weekday, or choose 24/7.")
        for day, intervals in self.hours.items():
            try:
                BusinessCalendar(tz=self.tz, hours={day: intervals})
            except ValueError as exc:
                raise SlaRejected(f"{WEEKDAY_NAMES[day]}: {exc}.") from exc
        return BusinessCalendar(tz=self.tz, hours=dict(self.hours), holidays=self.holidays,
                                always_open=self.always_open)

    def snapshot(self) -> dict[str, Any]:
        """JSON for the row and the audit log."""
        return {"tz": self.tz, "always_open": self.always_open,
                "hours": {str(d): [list(iv) for iv in ivs] for d, ivs in sorted(self.hours.items()) if ivs},
                "holidays": sorted(d.isoformat() for d in self.holidays),
                "at_risk_fraction": self.at_risk_fraction}


@cache
def available_zones() -> frozenset[str]:
    """Read once, on first use: the system's zone names (the form validates against them)."""
    return frozenset(available_timezones())


def settings_from_row(row: Any | None) -> CalendarSettings:
    if row is None:
        return CalendarSettings()
    cal = calendar_from_row(row)
    return CalendarSettings(tz=cal.tz, always_open=cal.always_open,
                            hours={d: tuple(ivs) for d, ivs in enumerate(cal.hours) if ivs},
                            holidays=cal.holidays, at_risk_fraction=float(row.at_risk_fraction))


async def calendar_settings(conn: AsyncConnection, team_id: int) -> CalendarSettings:
    """What is stored for a team, or the defaults (24/7 in Europe/Oslo)."""
    row = (await conn.execute(sa.select(calendar_t).where(calendar_t.c.team_id == team_id))).first()
    return settings_from_row(row)


async def all_calendar_settings(conn: AsyncConnection) -> dict[int, CalendarSettings]:
    """Every stored team calendar in one query; teams missing here use the defaults."""
    return {r.team_id: settings_from_row(r) for r in (await conn.execute(sa.select(calendar_t))).all()}


async def save_calendar(conn: AsyncConnection, actor_id: int | None, team_id: int, new: CalendarSettings,
                        now: datetime | None = None) -> None:
    """Validate, store and audit in the caller's transaction; the team's open deadlines are
    recounted, every cached setup is dropped, and from then on every timeline is counted with
    the new calendar, past ones included."""
    new.validated()
    before = await calendar_settings(conn, team_id)
    values = {**new.snapshot(), "updated_at": models.utcnow()}
    await conn.execute(insert(conn, calendar_t).values(team_id=team_id, **values)
                       .on_conflict_do_update(index_elements=["team_id"], set_=values))
    await audit.record(conn, actor_id, "sla.calendar", f"team {team_id}", before.snapshot(), new.snapshot())
    await conn.run_sync(refresh_waiting_sync, conversation_t.c.team_id == team_id, now or models.utcnow())
    invalidate()


@dataclass(frozen=True)
class StoredTargets:
    """What is stored for one visibility; None means the default."""

    first_response: int | None = None
    next_response: int | None = None
    resolution: int | None = None

    def check(self, words: str) -> None:
        for name, value in (("first response", self.first_response), ("next response", self.next_response),
                            ("resolution", self.resolution)):
            if value is not None and not 1 <= value <= MAX_TARGET_MINUTES:
                raise SlaRejected(f"The {words} {name} target must be between 1 and {MAX_TARGET_MINUTES} minutes.")


async def stored_targets(conn: AsyncConnection, channel_id: int) -> dict[bool, StoredTargets]:
    ch = (await conn.execute(sa.select(channel_t.c.sla_public_minutes, channel_t.c.sla_private_minutes)
                             .where(channel_t.c.id == channel_id))).first()
    if ch is None:
        raise SlaRejected("There is no such channel.")
    rows = {bool(r.public): r for r in (await conn.execute(
        sa.select(channel_sla_t).where(channel_sla_t.c.channel_id == channel_id))).all()}

    def one(public: bool, first: int | None) -> StoredTargets:
        row = rows.get(public)
        return StoredTargets(first, row.next_response_minutes if row else None, row.resolution_minutes if row else None)

    return {True: one(True, ch.sla_public_minutes), False: one(False, ch.sla_private_minutes)}


async def save_targets(conn: AsyncConnection, actor_id: int | None, channel_id: int,
                       new: Mapping[bool, StoredTargets], now: datetime | None = None) -> None:
    """Store a channel's targets for both visibilities, audit the change (one entry) and
    recount the channel's open deadlines."""
    for public, targets in new.items():
        targets.check("public" if public else "private")
    before = await stored_targets(conn, channel_id)
    await conn.execute(channel_t.update().where(channel_t.c.id == channel_id).values(
        sla_public_minutes=new[True].first_response, sla_private_minutes=new[False].first_response))
    for public, t in new.items():
        values = {"next_response_minutes": t.next_response, "resolution_minutes": t.resolution}
        await conn.execute(insert(conn, channel_sla_t).values(channel_id=channel_id, public=public, **values)
                           .on_conflict_do_update(index_elements=["channel_id", "public"], set_=values))
    await audit.record(conn, actor_id, "sla.policy", f"channel {channel_id}", _targets_json(before),
                       _targets_json(new))
    await conn.run_sync(refresh_waiting_sync, conversation_t.c.channel_id == channel_id, now or models.utcnow())
    invalidate()


def _targets_json(targets: Mapping[bool, StoredTargets]) -> dict[str, Any]:
    return {("public" if public else "private"): {"first_response": t.first_response, "next_response": t.next_response,
                                                  "resolution": t.resolution}
            for public, t in sorted(targets.items(), reverse=True)}


HOLIDAY_SETS = {"NO": ("Norwegian", norwegian_holidays), "SE": ("Swedish", swedish_holidays)}


def with_public_holidays(settings: CalendarSettings, country: str, year: int) -> CalendarSettings:
    """A starting point the lead edits afterwards: one country's public holidays for one year added."""
    if country not in HOLIDAY_SETS:
        raise SlaRejected("Choose Norwegian or Swedish public holidays.")
    if not 2000 <= year <= 2100:
        raise SlaRejected("Choose a year between 2000 and 2100.")
    return replace(settings, holidays=settings.holidays | HOLIDAY_SETS[country][1](year))


async def conversation_timeline(conn: AsyncConnection, conversation_id: int, now: datetime) -> Timeline | None:
    """One conversation's clocks with the stored policy of its channel, team and visibility."""
    conv = (await conn.execute(sa.select(conversation_t.c.channel_id, conversation_t.c.team_id,
                                         conversation_t.c.public).where(conversation_t.c.id == conversation_id))).first()
    if conv is None:
        return None
    rows = (await conn.execute(sa.select(event_t).where(event_t.c.conversation_id == conversation_id)
                               .order_by(event_t.c.id))).all()
    policy = (await load_sla_setup(conn)).policy_in_team(conv.team_id, conv.channel_id, conv.public)
    return timeline([event_from_row(r) for r in rows], policy, now, conversation_id=conversation_id)
