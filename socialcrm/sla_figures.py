"""Figures over many conversations: medians, p90, SLA attainment, first-contact resolution.

Each figure keeps the conversation ids behind it, so every number can link to its list.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from socialcrm.metrics import (
    FIRST,
    NEXT,
    RESOLUTION,
    Clock,
    Event,
    Timeline,
    is_human_response,
)

# -- figures over many conversations -------------------------------------------------------

Key = Callable[[Timeline, Clock], Hashable]


def by_attr(name: str) -> Key:
    """Group by something the caller knows about the conversation: channel, team."""
    return lambda tl, clock: tl.attrs.get(name)


def by_visibility(tl: Timeline, clock: Clock) -> str | None:
    return None if tl.public is None else ("public" if tl.public else "private")


def by_agent(tl: Timeline, clock: Clock) -> int | None:
    """Who gave the reply (or resolved); clocks nobody has answered yet group under None."""
    return clock.agent_id


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank: always a real observation, so "90 % were answered within X" is literally true."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def attainment_pct(clocks: Iterable[Clock]) -> float | None:
    """Met / (met + breached) in percent; running and closed clocks have no verdict yet."""
    verdicts = [c.status for c in clocks if c.status in ("met", "breached")]
    return 100.0 * verdicts.count("met") / len(verdicts) if verdicts else None


@dataclass(frozen=True)
class Summary:
    """One row of the response-times table; times in business minutes, ids for drill-down."""

    conversations: int
    first_response_median: float | None
    first_response_p90: float | None
    next_response_median: float | None
    resolution_median: float | None
    first_response_attainment_pct: float | None
    attainment_pct: float | None
    met: int
    breached: int
    conversation_ids: tuple[Any, ...] = ()
    breached_ids: tuple[Any, ...] = ()


@dataclass
class _Tally:
    minutes: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    verdicts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # met, breached
    ids: dict[Any, None] = field(default_factory=dict)        # dicts as ordered sets
    breached_ids: dict[Any, None] = field(default_factory=dict)


def _tally(pairs: Iterable[tuple[Timeline, Clock]]) -> _Tally:
    """One pass over a group's clocks: the dashboard sums tens of thousands of them per table."""
    t = _Tally()
    for tl, c in pairs:
        t.ids[tl.conversation_id] = None
        if c.status in ("met", "breached"):
            t.verdicts[c.kind][c.status == "breached"] += 1
            if c.answered_at is not None:
                t.minutes[c.kind].append(c.business_minutes)
            if c.status == "breached":
                t.breached_ids[tl.conversation_id] = None
    return t


def _pct(met: int, breached: int) -> float | None:
    return 100.0 * met / (met + breached) if met + breached else None


def summarize_group(pairs: Iterable[tuple[Timeline, Clock]]) -> Summary:
    t = _tally(pairs)
    met, breached = (sum(v[i] for v in t.verdicts.values()) for i in (0, 1))
    return Summary(
        conversations=len(t.ids), first_response_median=median(t.minutes[FIRST]),
        first_response_p90=percentile(t.minutes[FIRST], 90), next_response_median=median(t.minutes[NEXT]),
        resolution_median=median(t.minutes[RESOLUTION]), first_response_attainment_pct=_pct(*t.verdicts[FIRST]),
        attainment_pct=_pct(met, breached), met=met, breached=breached, conversation_ids=tuple(t.ids),
        breached_ids=tuple(t.breached_ids))


def summarize(timelines: Iterable[Timeline], key: Key | None = None) -> dict[Hashable, Summary]:
    """The table behind the dashboard: one Summary per group (a single None group without a key).

    Grouping is per clock, not per conversation, so "per agent" credits each reply to whoever
    gave it even when several agents answered one conversation.
    """
    groups: dict[Hashable, list[tuple[Timeline, Clock]]] = defaultdict(list)
    for tl in timelines:
        for clock in tl.clocks:
            groups[key(tl, clock) if key else None].append((tl, clock))
    return {k: summarize_group(pairs) for k, pairs in groups.items()}


# -- first-contact resolution ---------------------------------------------------------------

FCR_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class FcrResult:
    """Rate over the decided conversations; the id lists are what each number links to."""

    rate_pct: float | None
    first_contact: tuple[Any, ...]
    not_first_contact: tuple[Any, ...]
    undecided: tuple[Any, ...]  # resolved less than a window ago and not reopened yet


def fcr_outcome(events: Sequence[Event], now: datetime, window: timedelta = FCR_WINDOW) -> str | None:
    """'yes', 'no', 'undecided', or None when never resolved: one person's reply, no reopen in the window."""
    ordered = sorted((e for e in events if e.at <= now), key=lambda e: e.at)
    resolved = next((e for e in ordered if e.kind == "resolved"), None)
    if resolved is None:
        return None
    replies = sum(is_human_response(e) for e in ordered if e.at <= resolved.at)
    reopened = any(e.kind == "reopened" and resolved.at <= e.at <= resolved.at + window for e in ordered)
    if replies != 1 or reopened:
        return "no"
    return "yes" if now - resolved.at >= window else "undecided"


def first_contact_resolution(events_by_conversation: Mapping[Any, Sequence[Event]], now: datetime,
                             window: timedelta = FCR_WINDOW) -> FcrResult:
    outcomes: dict[str | None, list[Any]] = defaultdict(list)
    for conv_id, events in events_by_conversation.items():
        outcomes[fcr_outcome(events, now, window)].append(conv_id)
    yes, no = tuple(outcomes["yes"]), tuple(outcomes["no"])
    rate = 100.0 * len(yes) / (len(yes) + len(no)) if yes or no else None
    return FcrResult(rate, yes, no, tuple(outcomes["undecided"]))
