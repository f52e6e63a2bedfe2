"""SLA timelines and response-time figures, recomputed from the conversation event log.

Nothing here is stored: a timeline is a pure function of (events, policy, now), so editing a
calendar or a target changes history consistently, and every figure can explain itself.

The rules (issue 5):
- The first customer message starts the first-response clock and the resolution clock.
- Only people answer: a first_response/responded event with detail {"automated": true} stops
  nothing; a reply made in the platform's native app ({"via": "native app"}) is a person's.
- After a reply, the next customer message starts a next-response clock; more messages while
  it runs do not restart it. A reopen starts one too, and never touches the first response.
- "pending" pauses every running clock (waiting on the customer); the next customer_message or
  an "open" event resumes them. Resolving clears the pause.
- Resolving stops the resolution clock (a reopen resumes the same clock, so time spent resolved
  never counts) and closes an unanswered response clock: "breached" if already over its target,
  otherwise "closed" (no reply was needed), which is left out of every figure.
- A clock still running past its target is already "breached"; "running" means still in time.
- "linked" (issue 7, linked_threads.py): this private conversation continues a public comment
  we already answered privately, so its first customer message starts a next-response clock.
- "spam" (issue 7) leaves the conversation without any clock until a "not_spam" takes it back:
  no answer was owed, so it counts neither for nor against anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property, partial
from itertools import pairwise
from typing import Any

from socialcrm.calendars import (
    BusinessCalendar,
    add_business_time,
    business_seconds_between,
    closing_time,
    is_open,
    next_opening,
)

RESPONSE_KINDS = frozenset({"first_response", "responded"})
FIRST, NEXT, RESOLUTION = "first_response", "next_response", "resolution"
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Float business seconds from microsecond timestamps: an answer exactly on target is met.
EPSILON = 1e-6

Segment = tuple[datetime, datetime | None]


@dataclass(frozen=True)
class Event:
    """One ConversationEvent row, detached from the database."""

    kind: str
    at: datetime
    user_id: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def event_from_row(row: Any) -> Event:
    """From a ConversationEvent, a SQLAlchemy Row or a plain mapping."""
    get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name, None)
    return Event(kind=get("kind"), at=get("at"), user_id=get("user_id"), detail=get("detail") or {})


def events_from_rows(rows: Iterable[Any]) -> list[Event]:
    """In time order; the sort is stable, so rows read by id keep their order on equal times."""
    return sorted((event_from_row(r) for r in rows), key=lambda e: e.at)


def is_human_response(ev: Event) -> bool:
    return ev.kind in RESPONSE_KINDS and not ev.detail.get("automated")


@dataclass(frozen=True)
class SlaPolicy:
    first_response_minutes: float
    next_response_minutes: float
    resolution_minutes: float
    calendar: BusinessCalendar = field(default_factory=lambda: BusinessCalendar(always_open=True))
    at_risk_fraction: float = 0.8

    def target_seconds(self, kind: str) -> float:
        minutes = {FIRST: self.first_response_minutes, NEXT: self.next_response_minutes,
                   RESOLUTION: self.resolution_minutes}[kind]
        return minutes * 60.0


@dataclass(frozen=True)
class Clock:
    """One SLA clock; `segments` are the stretches it ran (the last one open-ended while running)."""

    kind: str
    started_at: datetime
    due_at: datetime | None          # None while paused: the deadline waits with the customer
    answered_at: datetime | None     # the reply, or the resolution for the resolution clock
    business_seconds: float
    target_seconds: float
    status: str                      # met | breached | running | closed
    agent_id: int | None = None
    segments: tuple[Segment, ...] = ()
    why: Callable[[], str] = field(default=lambda: "", repr=False, compare=False)
    #: Ended for good: answered, or closed by resolving (even when it had breached by then).
    stopped: bool = False

    @cached_property
    def explanation(self) -> str:
        """Worded on demand: a dashboard over thousands of clocks never reads most of them."""
        return self.why()

    @property
    def business_minutes(self) -> float:
        return self.business_seconds / 60.0

    @property
    def is_open(self) -> bool:
        return not self.stopped and self.answered_at is None and self.status in ("running", "breached")

    @property
    def paused(self) -> bool:
        return self.is_open and self.segments[-1][1] is not None


@dataclass(frozen=True)
class Timeline:
    first_response: Clock | None
    next_responses: tuple[Clock, ...]
    resolution: Clock | None
    policy: SlaPolicy
    computed_at: datetime
    public: bool | None = None
    agent_responses: int = 0
    conversation_id: Any = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def clocks(self) -> tuple[Clock, ...]:
        first = (self.first_response,) if self.first_response else ()
        return first + self.next_responses + ((self.resolution,) if self.resolution else ())


# -- walking the log ----------------------------------------------------------------------

@dataclass
class _Run:
    """A clock being built: what started it and the stretches it has run."""

    kind: str
    reason: str
    segments: list[Segment]


@dataclass
class _State:
    response: _Run | None = None
    resolution: _Run | None = None
    first_seen: bool = False
    paused: bool = False
    resolved: bool = False
    public: bool | None = None
    agent_responses: int = 0
    last_resolve: Event | None = None
    spam: bool = False
    done: list[tuple[_Run, str, Event | None]] = field(default_factory=list)  # (run, how it ended, event)


def _halt(run: _Run | None, at: datetime) -> None:
    if run and run.segments[-1][1] is None:
        run.segments[-1] = (run.segments[-1][0], at)


def _resume(run: _Run | None, at: datetime) -> None:
    if run and run.segments[-1][1] is not None:
        run.segments.append((at, None))


def _start_response(st: _State, at: datetime, reason: str) -> None:
    """A response clock, unless one runs already: the first ever is the first response."""
    if st.response is None:
        st.response = _Run(NEXT if st.first_seen else FIRST, reason, [(at, None)])
        st.first_seen = True
    if st.resolution is None:
        st.resolution = _Run(RESOLUTION, reason, [(at, None)])


def _on_customer(st: _State, ev: Event) -> None:
    if st.resolved:
        _on_reopened(st, replace(ev, kind="reopened"))
    if st.paused:
        _on_open(st, ev)
    _start_response(st, ev.at, "customer wrote")


def _on_response(st: _State, ev: Event) -> None:
    if not is_human_response(ev):
        return
    st.agent_responses += 1
    if st.response:
        _halt(st.response, ev.at)
        st.done.append((st.response, "answered", ev))
        st.response = None


def _on_pending(st: _State, ev: Event) -> None:
    if not st.resolved and not st.paused:
        st.paused = True
        _halt(st.response, ev.at)
        _halt(st.resolution, ev.at)


def _on_open(st: _State, ev: Event) -> None:
    if st.paused:
        st.paused = False
        _resume(st.response, ev.at)
        _resume(st.resolution, ev.at)


def _on_resolved(st: _State, ev: Event) -> None:
    if st.resolved:
        return
    st.resolved, st.paused = True, False
    _halt(st.response, ev.at)
    _halt(st.resolution, ev.at)
    if st.response:
        st.done.append((st.response, "closed", ev))
        st.response = None
    st.last_resolve = ev


def _on_reopened(st: _State, ev: Event) -> None:
    if st.resolved:
        st.resolved = False
        _resume(st.resolution, ev.at)
        _start_response(st, ev.at, "reopened")


def _on_created(st: _State, ev: Event) -> None:
    st.public = ev.detail.get("public", st.public)


def _on_linked(st: _State, ev: Event) -> None:
    st.first_seen = True


def _on_spam(st: _State, ev: Event) -> None:
    st.spam = ev.kind == "spam"


HANDLERS: dict[str, Callable[[_State, Event], None]] = {
    "created": _on_created, "customer_message": _on_customer, "first_response": _on_response,
    "responded": _on_response, "pending": _on_pending, "open": _on_open, "resolved": _on_resolved,
    "reopened": _on_reopened, "linked": _on_linked, "spam": _on_spam, "not_spam": _on_spam,
}


def timeline(events: Sequence[Event], policy: SlaPolicy, now: datetime, *, conversation_id: Any = None,
             attrs: Mapping[str, Any] | None = None) -> Timeline:
    """Every SLA clock of one conversation as of `now`; events after `now` are not yet known."""
    st = _State()
    for ev in sorted((e for e in events if e.at <= now), key=lambda e: e.at):
        HANDLERS.get(ev.kind, lambda s, e: None)(st, ev)
    if st.spam:
        # Marked spam (and not taken back): no work was owed, so no clock counts for or against anyone.
        return Timeline(None, (), None, policy, now, st.public, st.agent_responses, conversation_id,
                        dict(attrs or {}))
    clocks = [_finish(run, how, ev, policy, now) for run, how, ev in st.done]
    if st.response:
        clocks.append(_finish(st.response, "running", None, policy, now))
    first = next((c for c in clocks if c.kind == FIRST), None)
    nexts = tuple(sorted((c for c in clocks if c.kind == NEXT), key=lambda c: c.started_at))
    return Timeline(first, nexts, _finish_resolution(st, policy, now), policy, now, st.public,
                    st.agent_responses, conversation_id, dict(attrs or {}))


def _finish_resolution(st: _State, policy: SlaPolicy, now: datetime) -> Clock | None:
    if st.resolution is None:
        return None
    how = "answered" if st.resolved else "running"
    return _finish(st.resolution, how, st.last_resolve if st.resolved else None, policy, now)


# -- turning a run into a clock -------------------------------------------------------------

def _used(cal: BusinessCalendar, segments: Sequence[Segment], now: datetime) -> float:
    return sum(business_seconds_between(cal, s, e or now) for s, e in segments)


def _due(cal: BusinessCalendar, segments: Sequence[Segment], target: float) -> datetime:
    """When the target is (or would be) reached: inside a stretch it ran, or had the last one gone on."""
    used = 0.0
    for s, e in segments[:-1]:
        ran = business_seconds_between(cal, s, e)  # type: ignore[arg-type] - only the last is open
        if used + ran >= target - EPSILON:
            return add_business_time(cal, s, max(target - used, 0.0))
        used += ran
    return add_business_time(cal, segments[-1][0], max(target - used, 0.0))


def _status(how: str, used: float, target: float) -> str:
    over = used > target + EPSILON
    if how == "answered":
        return "breached" if over else "met"
    if over:
        return "breached"
    return "closed" if how == "closed" else "running"


def _finish(run: _Run, how: str, ev: Event | None, policy: SlaPolicy, now: datetime) -> Clock:
    cal, target = policy.calendar, policy.target_seconds(run.kind)
    segments = tuple(run.segments)
    used = _used(cal, segments, now)
    status = _status(how, used, target)
    paused = how == "running" and segments[-1][1] is not None
    due = None if paused else _due(cal, segments, target)
    answered = ev.at if ev and how == "answered" else None
    agent = ev.user_id if ev and how == "answered" else None
    why = partial(explain, cal, run.kind, run.reason, segments, how, ev, now, used, target, status)
    return Clock(run.kind, segments[0][0], due, answered, used, target, status, agent, segments, why,
                 stopped=how != "running")


# -- explanations -------------------------------------------------------------------------

END_WORDS = {FIRST: "first reply", NEXT: "next reply", RESOLUTION: "resolved"}


def _when(cal: BusinessCalendar, at: datetime, long: bool = False) -> str:
    """'Fri 16:55' in the calendar's zone (the date too when the clock spans a week or more)."""
    local = at.astimezone(cal.zone)
    day = DAY_NAMES[local.weekday()] + (local.strftime(" %Y-%m-%d") if long else "")
    return f"{day} {local:%H:%M}"


def local_time(cal: BusinessCalendar, at: datetime) -> str:
    """'Fri 16:55' in the calendar's zone, with the date: what a timeline shows beside each step."""
    return _when(cal, at, long=True)


def explain(cal: BusinessCalendar, kind: str, reason: str, segments: Sequence[Segment], how: str,
            ev: Event | None, now: datetime, used: float, target: float, status: str) -> str:
    """The plain-words 'why': start, hours that stopped the clock, pauses, end, sum and verdict."""
    start, end = segments[0][0], (ev.at if ev else now)
    long = end - start >= timedelta(days=6)
    parts = [f"{reason} {_when(cal, start, long)}", *_hours_note(cal, start, end, long)]
    parts += _pause_notes(cal, segments, long, paused=how == "running")
    parts.append(_end_note(cal, kind, how, ev, now, long))
    so_far = " so far" if how == "running" else ""
    return "; ".join(p for p in parts if p) + \
        f" = {_minutes_words(used)}{so_far}, target {_number(target / 60)}: {status}"


def _hours_note(cal: BusinessCalendar, start: datetime, end: datetime, long: bool) -> list[str]:
    if cal.always_open:
        return []
    if not is_open(cal, start):
        opening = next_opening(cal, start)
        return [f"outside business hours, clock started {_when(cal, opening, long)}"] if opening and opening < end else []
    close = closing_time(cal, start)
    return [f"business hours ended {close.astimezone(cal.zone):%H:%M}"] if close and close < end else []


def _pause_notes(cal: BusinessCalendar, segments: Sequence[Segment], long: bool, paused: bool) -> list[str]:
    notes = [f"waiting on customer {_when(cal, a[1], long)}-{_when(cal, b[0], long)}"
             for a, b in pairwise(segments)]
    if paused and segments[-1][1] is not None:
        notes.append(f"waiting on customer since {_when(cal, segments[-1][1], long)}")
    return notes


def _end_note(cal: BusinessCalendar, kind: str, how: str, ev: Event | None, now: datetime, long: bool) -> str:
    if how == "answered" and ev:
        via = f" ({ev.detail['via']})" if ev.detail.get("via") else ""
        return f"{END_WORDS[kind]}{via} {_when(cal, ev.at, long)}"
    if how == "closed" and ev:
        return f"resolved {_when(cal, ev.at, long)} without a reply"
    return f"{'not resolved' if kind == RESOLUTION else 'no reply'} yet at {_when(cal, now, long)}"


def _minutes_words(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} business minute{'' if minutes == 1 else 's'}"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# -- live questions -----------------------------------------------------------------------

def used_seconds(tl: Timeline, clock: Clock, now: datetime) -> float:
    """Business time a clock has used by `now` (later than the timeline's own `now` for a live view)."""
    return _used(tl.policy.calendar, clock.segments, now) if clock.is_open else clock.business_seconds


def at_risk(tl: Timeline, now: datetime) -> bool:
    """A ticking clock has used at least the policy's fraction of its target but not all of it.

    Already-breached clocks are `breached_open`, so "breaching soon" and "breached" never overlap.
    """
    return any(c.is_open and not c.paused and
               tl.policy.at_risk_fraction * c.target_seconds <= used_seconds(tl, c, now) <= c.target_seconds + EPSILON
               for c in tl.clocks)


def breached_open(tl: Timeline, now: datetime) -> bool:
    return any(c.is_open and used_seconds(tl, c, now) > c.target_seconds + EPSILON for c in tl.clocks)


def next_due(tl: Timeline) -> datetime | None:
    """The earliest deadline of a ticking response clock: what the router orders by."""
    dues = [c.due_at for c in tl.clocks if c.is_open and c.kind != RESOLUTION and c.due_at]
    return min(dues, default=None)


def running_response(tl: Timeline) -> Clock | None:
    """The ticking response clock (first or next) the conversation row's deadline mirrors."""
    return next((c for c in tl.clocks if c.is_open and not c.paused and c.kind != RESOLUTION), None)


def reached_at(tl: Timeline, clock: Clock, share: float) -> datetime:
    """When `clock` has used `share` of its target (pauses skipped): 1.0 is its deadline."""
    return _due(tl.policy.calendar, clock.segments, clock.target_seconds * share)
