"""First-response deadlines and the priority number the inbox is ordered by.

Priority is one integer so that a single index on (status, priority desc, waiting_since)
serves the inbox: visibility first (public above private), then the earliest deadline,
with large audiences treated as if their deadline were earlier.
"""

from __future__ import annotations

from datetime import datetime, timedelta

PUBLIC_BAND = 2 * 10**11
PRIVATE_BAND = 1 * 10**11
#: Reach raises urgency: a customer with this many followers counts as this much more overdue.
EXPOSURE_STEPS = ((100_000, timedelta(minutes=30)), (10_000, timedelta(minutes=15)), (1_000, timedelta(minutes=5)))


def first_response_due(waiting_since: datetime, minutes: int) -> datetime:
    """24/7 clock; business-hours calendars plug in here."""
    return waiting_since + timedelta(minutes=minutes)


def exposure_bonus(followers: int | None) -> timedelta:
    for threshold, bonus in EXPOSURE_STEPS:
        if followers is not None and followers >= threshold:
            return bonus
    return timedelta(0)


def priority(public: bool, due: datetime | None, followers: int | None = None) -> int:
    """Higher sorts first; any public conversation outranks every private one, and anything
    waiting for an answer outranks everything that is not (answered, resolved: priority 0)."""
    band = PUBLIC_BAND if public else PRIVATE_BAND
    if due is None:
        return 0
    effective = due - exposure_bonus(followers)
    return band - int(effective.timestamp())


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
