"""The leads' dashboard: live counts from the conversation rows, response times from the event log.

Two kinds of numbers, read two ways:
- Live (open by channel and visibility, unassigned, breaching soon, breached, agents' load):
  counts over the open conversations' own columns (status, assignee, sla_risk_at, sla_due_at,
  which the SLA engine keeps), so they are exact at every refresh and cost one indexed scan.
- Response times over a period: the conversations that started in it and their whole event
  logs, read in two statements (never one per conversation), turned into SLA clocks by
  `metrics.timeline` under today's stored setup (`sla_policies`) and summed by `sla_figures`.
  Changing a calendar or a target therefore recomputes history. Every figure keeps the
  conversation ids behind it (`ids_behind`), so each number can link to its list.

Computing the clocks of ten thousand conversations takes about a second of CPU, so the figures
of a period are kept (`FigureCache`): answered at once, computed again in the background when
they are older than half a minute and the log has grown (reusing every finished timeline whose
log has not grown), and from scratch, before answering, when the setup changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models, routing
from socialcrm.metrics import FIRST, HANDLERS, NEXT, RESOLUTION, Event, Timeline, timeline
from socialcrm.sla_figures import Summary, by_agent, by_attr, by_visibility, summarize_group
from socialcrm.sla_policies import DEFAULT_TZ, SlaSetup, load_sla_setup

conv_t = models.Conversation.__table__
event_t = models.ConversationEvent.__table__
channel_t = models.Channel.__table__
team_t = models.Team.__table__
user_t = models.User.__table__
identity_t = models.Identity.__table__
contact_t = models.Contact.__table__

log = logging.getLogger(__name__)
ZONE = ZoneInfo(DEFAULT_TZ)
PAGE_SIZE = 50
#: The tables of the response-times section: how clocks are grouped, in the order shown.
GROUPINGS: dict[str, Callable[[Timeline, Any], Hashable]] = {
    "channel": by_attr("channel"), "visibility": by_visibility, "agent": by_agent, "team": by_attr("team")}
#: Figures a number can stand for, and which clocks are behind each (kinds; None: any kind).
FIGURE_CLOCKS: dict[str, tuple[str, ...] | None] = {
    "first_response": (FIRST,), "next_response": (NEXT,), "resolution": (RESOLUTION,),
    "first_response_attainment": (FIRST,), "attainment": None}
FIGURES = ("conversations", "breached", *FIGURE_CLOCKS)
#: The event kinds the SLA clocks react to; the others (assigned, moderated, ...) are not read.
CLOCK_KINDS = tuple(HANDLERS)
MEASURED = frozenset({"first_response", "next_response", "resolution"})   # medians: answered clocks only


# -- response times over a period ----------------------------------------------------------

@dataclass(frozen=True)
class Started:
    """A conversation that started in the period, with what the figures group it by."""

    id: int
    channel_id: int
    team_id: int
    public: bool
    created_at: datetime

    @property
    def local(self) -> datetime:
        return self.created_at.astimezone(ZONE)


@dataclass
class Figures:
    """Everything the response-times section, its charts, its CSV and its drill-downs show."""

    since: datetime
    until: datetime
    computed_at: datetime
    started: list[Started]
    timelines: list[Timeline]
    tables: dict[str, dict[Hashable, Summary]]
    total: Summary | None
    per_day: dict[date, Summary]
    volume: Counter[tuple[int, int]] = field(default_factory=Counter)   # (channel id, local hour) -> count
    #: What each timeline was computed from: its log's length (the log only grows) and its policy's key.
    sources: dict[int, tuple[int, int, int, bool]] = field(default_factory=dict)

    @property
    def by_id(self) -> dict[int, Timeline]:
        return {tl.conversation_id: tl for tl in self.timelines}

    def finished(self) -> dict[int, tuple[tuple[int, int, int, bool], Timeline]]:
        """Timelines with no clock running: they no longer change with time, only with new events."""
        return {tl.conversation_id: (self.sources[tl.conversation_id], tl) for tl in self.timelines
                if tl.conversation_id in self.sources and not any(c.is_open for c in tl.clocks)}


async def load_period(conn: AsyncConnection, since: datetime, until: datetime
                      ) -> tuple[list[Started], dict[int, list[Event]]]:
    """The conversations that started in [since, until) and their logs: two statements in all."""
    c, e = conv_t.c, event_t.c
    in_period = [c.created_at >= since, c.created_at < until]
    started = [Started(r.id, r.channel_id, r.team_id, bool(r.public), r.created_at) for r in (await conn.execute(
        sa.select(c.id, c.channel_id, c.team_id, c.public, c.created_at).where(*in_period).order_by(c.id))).all()]
    logs: dict[int, list[Event]] = defaultdict(list)
    # Only the kinds the clocks read; the detail as text, decoded only when there is one: most
    # events have none, and decoding tens of thousands of "{}" was a third of the reading time.
    rows = await conn.execute(
        sa.select(e.conversation_id, e.kind, e.at, e.user_id, sa.cast(e.detail, sa.Text).label("detail"))
        .select_from(event_t.join(conv_t, conv_t.c.id == e.conversation_id))
        .where(*in_period, e.kind.in_(CLOCK_KINDS)).order_by(e.conversation_id, e.id))
    for r in rows:
        detail = json.loads(r.detail) if r.detail and r.detail != "{}" else {}
        logs[r.conversation_id].append(Event(r.kind, r.at, r.user_id, detail))
    return started, logs


def compute(started: Sequence[Started], logs: dict[int, list[Event]], setup: SlaSetup, now: datetime,
            since: datetime, until: datetime, previous: Figures | None = None) -> Figures:
    """Clocks for every conversation, then one summary per table, per day and in total.

    `previous` (computed under the same setup) lends its finished timelines of conversations
    whose log has not grown: a refresh recomputes only what is running or has changed.
    """
    policies: dict[tuple[int, int, bool], Any] = {}
    reusable = previous.finished() if previous is not None else {}
    timelines, sources = [], {}
    for s in started:
        pkey, log_ = (s.team_id, s.channel_id, s.public), logs.get(s.id, ())
        sources[s.id] = source = (len(log_), *pkey)
        kept = reusable.get(s.id)
        # An event dated after the previous computation (a platform's clock ahead of ours) was not
        # yet counted then, even though the log has the same length now.
        if kept is not None and kept[0] == source and all(e.at <= kept[1].computed_at for e in log_):
            timelines.append(kept[1])
            continue
        if pkey not in policies:
            policies[pkey] = setup.policy_in_team(*pkey)
        timelines.append(timeline(logs.get(s.id, ()), policies[pkey], now, conversation_id=s.id,
                                  attrs={"channel": s.channel_id, "team": s.team_id, "day": s.local.date()}))
    tables = summarize_all(timelines, {**GROUPINGS, "day": by_attr("day"), "all": lambda tl, clock: None})
    per_day, total = tables.pop("day"), tables.pop("all").get(None)
    volume = Counter((s.channel_id, s.local.hour) for s in started)
    return Figures(since, until, now, list(started), timelines, tables, total,
                   dict(sorted(per_day.items())), volume, sources)   # type: ignore[arg-type]


def summarize_all(timelines: Sequence[Timeline], keys: dict[str, Callable[[Timeline, Any], Hashable]]
                  ) -> dict[str, dict[Hashable, Summary]]:
    """`sla_figures.summarize` for several groupings in one walk over the clocks (a walk per
    grouping built each timeline's clock tuple six times over: a third of the CPU)."""
    groups: dict[str, dict[Hashable, list[tuple[Timeline, Any]]]] = {name: defaultdict(list) for name in keys}
    for tl in timelines:
        for clock in tl.clocks:
            pair = (tl, clock)
            for name, key in keys.items():
                groups[name][key(tl, clock)].append(pair)
    return {name: {k: summarize_group(pairs) for k, pairs in g.items()} for name, g in groups.items()}


async def figures(conn: AsyncConnection, since: datetime, until: datetime, now: datetime) -> Figures:
    """Load and compute, uncached (tests, the benchmark's baseline)."""
    setup = await load_sla_setup(conn)
    started, logs = await load_period(conn, since, until)
    return compute(started, logs, setup, now, since, until)


def group_key(raw: Any) -> str:
    """How a group is named in a URL: its key as text, 'none' for clocks nobody answered yet."""
    return "none" if raw is None else str(raw)


def ids_behind(fig: Figures, table: str, key: str, figure: str) -> list[int]:
    """The conversations behind one number, in the order they started.

    `table` is a grouping, "all", "day" or "hour" (a bar of the volume chart); a median or p90
    stands on the answered clocks of its kind that have a verdict, an attainment on every clock
    with a verdict (met or breached), "breached" on the conversations with a breached clock.
    """
    if figure not in FIGURES:
        raise ValueError(f"unknown figure {figure!r}")
    if table == "hour":
        return _hour_ids(fig, key)
    summary = _summary(fig, table, key)
    if figure == "conversations":
        return list(summary.conversation_ids)
    if figure == "breached":
        return list(summary.breached_ids)
    grouping = _grouping(table)
    kinds = FIGURE_CLOCKS[figure]
    found: dict[int, None] = {}
    for tl in fig.timelines:
        for clock in tl.clocks:
            if ((kinds is None or clock.kind in kinds) and clock.status in ("met", "breached")
                    and (figure not in MEASURED or clock.answered_at is not None)
                    and group_key(grouping(tl, clock)) == key):
                found[tl.conversation_id] = None
    return list(found)


def _grouping(table: str) -> Callable[[Timeline, Any], Hashable]:
    if table in GROUPINGS:
        return GROUPINGS[table]
    if table == "day":
        return by_attr("day")
    return lambda tl, clock: "all"


def _summary(fig: Figures, table: str, key: str) -> Summary:
    if table == "all":
        groups: dict[Hashable, Summary] = {"all": fig.total} if fig.total else {}
    elif table == "day":
        groups = dict(fig.per_day)   # type: ignore[arg-type]
    elif table in GROUPINGS:
        groups = fig.tables[table]
    else:
        raise ValueError(f"unknown table {table!r}")
    for k, summary in groups.items():
        if group_key(k) == key:
            return summary
    raise KeyError(key)


def _hour_ids(fig: Figures, key: str) -> list[int]:
    """Key "<channel id>-<hour>": the conversations one bar of the volume chart stands for."""
    channel, _, hour = key.partition("-")
    if not (channel.isdigit() and hour.isdigit()):
        raise KeyError(key)
    return [s.id for s in fig.started if s.channel_id == int(channel) and s.local.hour == int(hour)]


# -- the short-lived cache ------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    made: float          # the cache's clock when computed
    mark: int            # the log's highest event id then
    setup: str           # the SLA setup it was computed under, as text
    fig: Figures


class FigureCache:
    """The last figures of each period, answered at once and computed again behind the scenes.

    An entry is fresh for `ttl` seconds, and up to `max_age` while the log has not grown (open
    clocks run on without events). A stale entry is still answered (the page says when it was
    computed) while one background task computes the period again; a changed SLA setup, or an
    entry past `max_age`, is computed before answering, so an edited calendar shows at once.
    One computation per period at a time, however many leads ask; a few periods are kept.
    """

    def __init__(self, engine: AsyncEngine, ttl: float = 30.0, max_age: float = 300.0, size: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.ttl, self.max_age, self.size, self.clock = engine, ttl, max_age, size, clock
        self._entries: dict[tuple[datetime, datetime], _Entry] = {}
        self._running: dict[tuple[datetime, datetime, str], asyncio.Task[Figures]] = {}

    async def get(self, since: datetime, until: datetime, now: datetime) -> Figures:
        async with self.engine.connect() as conn:
            setup = await load_sla_setup(conn)
            mark = int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.max(event_t.c.id), 0))) or 0)
        text, hit = repr(setup), self._entries.get((since, until))
        if hit is not None and hit.setup == text:
            age = self.clock() - hit.made
            if age < self.ttl or (hit.mark == mark and age < self.max_age):
                return hit.fig
            if age < self.max_age:
                self._start(since, until, setup, text, mark, now)
                return hit.fig
        return await asyncio.shield(self._start(since, until, setup, text, mark, now))

    async def settled(self) -> None:
        """Until the background computations have finished (tests, shutdown)."""
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _start(self, since: datetime, until: datetime, setup: SlaSetup, text: str, mark: int,
               now: datetime) -> asyncio.Task[Figures]:
        key = (since, until, text)
        if key not in self._running:
            task = asyncio.create_task(self._compute(since, until, setup, text, mark, now))
            self._running[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        return self._running[key]

    def _finished(self, key: tuple[datetime, datetime, str], task: asyncio.Task[Figures]) -> None:
        self._running.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("dashboard figures for %s..%s failed", key[0], key[1], exc_info=task.exception())

    async def _compute(self, since: datetime, until: datetime, setup: SlaSetup, text: str, mark: int,
                       now: datetime) -> Figures:
        async with self.engine.connect() as conn:
            started, logs = await load_period(conn, since, until)
        # About a second of pure CPU for a month of a busy team: in a worker thread, so the event
        # loop keeps acknowledging webhooks and serving the inbox meanwhile.
        before = self._entries.get((since, until))
        previous = before.fig if before is not None and before.setup == text else None
        fig = await asyncio.to_thread(compute, started, logs, setup, now, since, until, previous)
        self._entries.pop((since, until), None)
        self._entries[(since, until)] = _Entry(self.clock(), mark, text, fig)
        while len(self._entries) > self.size:
            self._entries.pop(next(iter(self._entries)))
        return fig


_caches: weakref.WeakKeyDictionary[AsyncEngine, FigureCache] = weakref.WeakKeyDictionary()


def cache_for(engine: AsyncEngine) -> FigureCache:
    """One cache per engine (per database) in this process."""
    if engine not in _caches:
        _caches[engine] = FigureCache(engine)
    return _caches[engine]


# -- live -----------------------------------------------------------------------------------

LIVE_FILTERS = ("open", "unassigned", "breaching", "breached", "agent")


@dataclass(frozen=True)
class Live:
    open_by_channel: dict[tuple[int, bool], int]   # (channel id, public) -> open conversations
    open: int
    unassigned: int
    breaching: int
    breached: int
    pending: int
    agents: list[routing.Agent]


def live_where(name: str, key: str, now: datetime) -> list[Any]:
    """The WHERE of a live number; its count and its drill-down list use the same one."""
    c = conv_t.c
    is_open = c.status == models.OPEN
    if name == "open":
        channel, _, public = key.partition("-")
        if not key:
            return [is_open]
        if not channel.isdigit() or public not in ("public", "private"):
            raise KeyError(key)
        return [is_open, c.channel_id == int(channel), c.public.is_(public == "public")]
    if name == "unassigned":
        return [is_open, c.assignee_id.is_(None)]
    if name == "breaching":
        return [is_open, c.sla_risk_at <= now, c.sla_due_at >= now]
    if name == "breached":
        return [is_open, c.sla_due_at < now]
    if name == "agent" and key.isdigit():
        return [c.assignee_id == int(key), c.status.in_(("open", "pending"))]
    raise KeyError(f"{name} {key}")


def _count(where: list[Any]) -> Any:
    return sa.select(sa.func.count()).select_from(conv_t).where(*where).scalar_subquery()


async def live(conn: AsyncConnection, now: datetime) -> Live:
    """The live panel: three statements whatever the size of the inbox."""
    c = conv_t.c
    by_channel = {(r.channel_id, bool(r.public)): r.n for r in (await conn.execute(
        sa.select(c.channel_id, c.public, sa.func.count().label("n")).where(c.status == models.OPEN)
        .group_by(c.channel_id, c.public))).all()}
    counts = (await conn.execute(sa.select(
        *(_count(live_where(name, "", now)).label(name) for name in ("unassigned", "breaching", "breached")),
        _count([c.status == "pending"]).label("pending")))).one()
    agents = await conn.run_sync(routing.online_agents_sync)
    return Live(by_channel, sum(by_channel.values()), counts.unassigned, counts.breaching, counts.breached,
                counts.pending, sorted(agents, key=lambda a: (-a.load, a.name)))


# -- names and lists ------------------------------------------------------------------------

@dataclass(frozen=True)
class Names:
    channels: dict[int, str]
    teams: dict[int, str]
    agents: dict[int, str]

    def of(self, table: str, key: Any) -> str:
        if table == "channel":
            return self.channels.get(key, f"channel {key}")
        if table == "team":
            return self.teams.get(key, f"team {key}")
        if table == "agent":
            return "not answered yet" if key is None else self.agents.get(key, f"user {key}")
        return "unknown" if key is None else str(key)


async def names(conn: AsyncConnection) -> Names:
    """Every channel, team and user name: a handful of configuration rows, not per conversation."""
    agent = sa.func.coalesce(sa.func.nullif(user_t.c.display_name, ""), user_t.c.username)
    return Names(dict((await conn.execute(sa.select(channel_t.c.id, channel_t.c.name))).all()),
                 dict((await conn.execute(sa.select(team_t.c.id, team_t.c.name))).all()),
                 dict((await conn.execute(sa.select(user_t.c.id, agent))).all()))


def _list_select() -> Any:
    customer = sa.func.coalesce(sa.func.nullif(identity_t.c.name, ""), contact_t.c.name)
    assignee = sa.func.coalesce(sa.func.nullif(user_t.c.display_name, ""), user_t.c.username)
    return (sa.select(conv_t.c.id, conv_t.c.public, conv_t.c.status, conv_t.c.created_at, conv_t.c.sla_due_at,
                      conv_t.c.last_message_preview, channel_t.c.name.label("channel_name"),
                      customer.label("customer_name"), assignee.label("assignee_name"))
            .select_from(conv_t.join(channel_t, channel_t.c.id == conv_t.c.channel_id)
                         .join(identity_t, identity_t.c.id == conv_t.c.identity_id)
                         .join(contact_t, contact_t.c.id == conv_t.c.contact_id)
                         .outerjoin(user_t, user_t.c.id == conv_t.c.assignee_id)))


async def rows_for_ids(conn: AsyncConnection, ids: Sequence[int], page: int) -> list[Any]:
    """One page of a figure's conversations, in the figure's order."""
    chunk = list(ids[(page - 1) * PAGE_SIZE: page * PAGE_SIZE])
    if not chunk:
        return []
    found = {r.id: r for r in (await conn.execute(_list_select().where(conv_t.c.id.in_(chunk)))).all()}
    return [found[i] for i in chunk if i in found]


async def rows_for_live(conn: AsyncConnection, where: list[Any], page: int) -> tuple[int, list[Any]]:
    """The total and one page of a live number's conversations, oldest first."""
    total = int((await conn.execute(sa.select(_count(where)))).scalar() or 0)
    stmt = _list_select().where(*where).order_by(conv_t.c.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    return total, list((await conn.execute(stmt)).all())


def in_pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))
