"""Response deadlines and the priority number the inbox is ordered by.

Priority is one integer so that a single index on (status, priority desc, waiting_since)
serves the inbox: a conversation about to breach (it has used the team's at-risk share of its
target) above everything else, then visibility (public above private), then the earliest
deadline, with large audiences treated as if their deadline were earlier. The bands are far
apart (a deadline in seconds since 1970 is about 2 * 10**9), so

    at-risk public > at-risk private > public > private > 0 (nobody waiting)

and "is it raised?" is the range test `priority >= PUBLIC_BAND`, which the same index serves:
the SLA tick finds the conversations crossing the threshold without a scan.

Deadlines are counted in the team's business hours (socialcrm.calendars).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from socialcrm.calendars import BusinessCalendar, add_business_time

PUBLIC_BAND = 2 * 10**11
PRIVATE_BAND = 1 * 10**11
#: Added on top of either band once a conversation is at risk; priorities at or above
#: PUBLIC_BAND are exactly the raised ones.
AT_RISK_BAND = 2 * 10**11
#: Reach raises urgency: a customer with this many followers counts as this much more overdue.
EXPOSURE_STEPS = ((100_000, timedelta(minutes=30)), (10_000, timedelta(minutes=15)), (1_000, timedelta(minutes=5)))


def first_response_due(waiting_since: datetime, minutes: float, calendar: BusinessCalendar | None = None) -> datetime:
    """The deadline of a clock started at `waiting_since`; 24/7 without a calendar."""
    if calendar is None:
        return waiting_since + timedelta(minutes=minutes)
    return add_business_time(calendar, waiting_since, minutes * 60.0)


@dataclass(frozen=True)
class Deadline:
    """A running response clock as the conversation row stores it."""

    waiting_since: datetime
    due: datetime
    risk_at: datetime


def start_clock(calendar: BusinessCalendar, at: datetime, minutes: float, at_risk_fraction: float) -> Deadline:
    """A fresh clock: due after `minutes` of business time, at risk after that share of them."""
    return Deadline(at, first_response_due(at, minutes, calendar),
                    first_response_due(at, minutes * at_risk_fraction, calendar))


def row_values(deadline: Deadline | None, public: bool, followers: int | None, now: datetime) -> dict[str, Any]:
    """The conversation columns for a clock (or for nobody waiting), priority included."""
    if deadline is None:
        return {"waiting_since": None, "sla_due_at": None, "sla_risk_at": None, "priority": priority(public, None)}
    risky = deadline.risk_at <= now
    return {"waiting_since": deadline.waiting_since, "sla_due_at": deadline.due, "sla_risk_at": deadline.risk_at,
            "priority": priority(public, deadline.due, followers, at_risk=risky)}


def exposure_bonus(followers: int | None) -> timedelta:
    for threshold, bonus in EXPOSURE_STEPS:
        if followers is not None and followers >= threshold:
            return bonus
    return timedelta(0)


def priority(public: bool, due: datetime | None, followers: int | None = None, at_risk: bool = False) -> int:
    """Higher sorts first; anything at risk outranks the rest, any public conversation outranks
    every private one in its band, and anything waiting for an answer outranks everything that
    is not (answered, resolved: priority 0)."""
    band = (PUBLIC_BAND if public else PRIVATE_BAND) + (AT_RISK_BAND if at_risk else 0)
    if due is None:
        return 0
    effective = due - exposure_bonus(followers)
    return band - int(effective.timestamp())


def is_raised(value: int) -> bool:
    return value >= PUBLIC_BAND


def describe_deadline(due: datetime | None, now: datetime) -> str:
    """'12 min to SLA' or 'SLA overdue by 5 min', the words agents see."""
    if due is None:
        return "no SLA"
    minutes = int((due - now).total_seconds() // 60)
    if minutes >= 0:
        return f"{_human(minutes)} to SLA"
    return f"SLA overdue by {_human(-minutes)}"


def _human(minutes: int) -> str:
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
