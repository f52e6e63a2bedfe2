"""Business-hours calendars: when an SLA clock may tick.

Opening hours are wall-clock times in the calendar's own zone, so "08:00" stays 08:00 local
across daylight-saving changes; every instant going in or out is an aware datetime (UTC in
the database). Each local day yields its open intervals as UTC pairs, and the functions below
only add up or walk those intervals: that keeps DST, weekends and holidays in one place
(`open_intervals`). An interval may end at "24:00"; a night shift is written as two
intervals on two days.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

#: A calendar with no open hours at all would make a deadline search run forever.
MAX_SEARCH_DAYS = 3 * 366

Interval = tuple[str, str]


@dataclass(frozen=True)
class BusinessCalendar:
    """A team's opening hours; `hours` maps weekday (Monday 0) to ("HH:MM", "HH:MM") intervals.

    Stored as a 7-tuple indexed by weekday so a calendar is hashable; `always_open` (24/7)
    ignores hours and holidays alike.
    """

    tz: str = "Europe/Oslo"
    hours: Mapping[int, Sequence[Interval]] | Sequence[Sequence[Interval]] = ()
    holidays: frozenset[date] = frozenset()
    always_open: bool = False

    def __post_init__(self) -> None:
        # Normalised to tuples so a calendar is a value: safe to share, compare and cache.
        given = dict(self.hours.items()) if isinstance(self.hours, Mapping) else dict(enumerate(self.hours))
        for day in given:
            _check_day(day, given[day])
        hours = tuple(tuple(sorted((s, e) for s, e in given.get(d, ()))) for d in range(7))
        object.__setattr__(self, "hours", hours)
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        # Looked up once (a misspelt zone fails here, not at the first deadline); the hash is
        # cached because every day's intervals are looked up in a cache keyed by the calendar.
        object.__setattr__(self, "zone", ZoneInfo(self.tz))
        object.__setattr__(self, "_hash", hash((self.tz, self.hours, self.holidays, self.always_open)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]


def weekdays(start: str = "08:00", end: str = "16:00", days: Sequence[int] = range(5)) -> dict[int, list[Interval]]:
    """The common case (same hours Monday to Friday) in one call."""
    return {d: [(start, end)] for d in days}


def _check_day(day: int, given: Sequence[Interval]) -> None:
    if not 0 <= day <= 6:
        raise ValueError(f"weekday must be 0 (Monday) to 6, not {day}")
    ivs = sorted(given)
    for s, e in ivs:
        if _minutes(s) >= _minutes(e):
            raise ValueError(f"opening {s}-{e} must end after it starts; split a night shift over two days")
    for (_, e1), (s2, _) in pairwise(ivs):
        if _minutes(s2) < _minutes(e1):
            raise ValueError(f"overlapping opening hours on weekday {day}")


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    if not (0 <= int(h) <= 24 and 0 <= int(m) < 60) or (int(h) == 24 and int(m)):
        raise ValueError(f"bad time of day {hhmm!r}")
    return int(h) * 60 + int(m)


def _local_instant(cal: BusinessCalendar, day: date, hhmm: str) -> datetime:
    """A wall-clock time on a local day as UTC; "24:00" is the next day's midnight."""
    wall = datetime.combine(day, time(0)) + timedelta(minutes=_minutes(hhmm))
    # The zone gives the offset valid at that wall time: +01:00 in winter, +02:00 in summer.
    return wall.replace(tzinfo=cal.zone).astimezone(UTC)


@lru_cache(maxsize=65536)
def open_intervals(cal: BusinessCalendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The UTC instants a local day is open: the single place hours, holidays and DST meet.

    Cached (a calendar is a hashable value): a dashboard asks about the same few weeks for
    thousands of conversations.
    """
    if cal.always_open:
        return ((_local_instant(cal, day, "00:00"), _local_instant(cal, day, "24:00")),)
    if day in cal.holidays:
        return ()
    return tuple((_local_instant(cal, day, s), _local_instant(cal, day, e)) for s, e in cal.hours[day.weekday()])


def _local_day(cal: BusinessCalendar, at: datetime) -> date:
    return _aware(at).astimezone(cal.zone).date()


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("business-hours arithmetic needs aware datetimes (UTC from the database)")
    return at


def _intervals_from(cal: BusinessCalendar, start: datetime, max_days: int = MAX_SEARCH_DAYS
                    ) -> Iterator[tuple[datetime, datetime]]:
    """Open intervals that end after `start`, clipped to begin no earlier than it, in order."""
    day = _local_day(cal, start) - timedelta(days=1)  # a day's intervals may start before local midnight in UTC
    for offset in range(max_days + 2):
        for s, e in open_intervals(cal, day + timedelta(days=offset)):
            if e > start and e > s:
                yield max(s, start), e


def business_seconds_between(cal: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Open time between two instants; 0 when `end` is not after `start`."""
    if _aware(end) <= _aware(start):
        return 0.0
    if cal.always_open:
        return (end - start).total_seconds()
    total = 0.0
    days = (end - start).days + 3
    for s, e in _intervals_from(cal, start, max_days=days):
        if s >= end:
            break
        total += (min(e, end) - s).total_seconds()
    return total


def add_business_time(cal: BusinessCalendar, start: datetime, seconds: float) -> datetime:
    """The deadline: the first instant by which `seconds` of open time have passed since `start`.

    A start outside opening hours begins counting at the next opening, so a message on
    Friday evening with a 60-minute target is due an hour after Monday's opening.
    """
    _aware(start)
    if cal.always_open:
        return start + timedelta(seconds=seconds)
    remaining = max(seconds, 0.0)
    for s, e in _intervals_from(cal, start):
        length = (e - s).total_seconds()
        if remaining <= length:
            return s + timedelta(seconds=remaining)
        remaining -= length
    raise ValueError(f"calendar has no opening hours within {MAX_SEARCH_DAYS} days of {start}")


def is_open(cal: BusinessCalendar, at: datetime) -> bool:
    """Whether the clock ticks at this instant (intervals are half-open: closed at 16:00 sharp)."""
    return any(s <= at < e for s, e in open_intervals(cal, _local_day(cal, at)))


def next_opening(cal: BusinessCalendar, at: datetime) -> datetime | None:
    """When the clock next starts ticking at or after `at` (itself when open); None if never."""
    return next((s for s, _ in _intervals_from(cal, at)), None)


def closing_time(cal: BusinessCalendar, at: datetime) -> datetime | None:
    """When the open period containing `at` ends, joining back-to-back intervals; None if closed or 24/7.

    A desk open round the clock every day is looked at one week ahead, not forever.
    """
    if cal.always_open or not is_open(cal, at):
        return None
    end = at
    for s, e in _intervals_from(cal, at, max_days=7):
        if s > end:
            break
        end = e
    return end


# -- public holidays: a starting point the admin edits -------------------------------------

def easter_sunday(year: int) -> date:
    """Western Easter by the anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7  # the algorithm's own names
    m = (a + 11 * h + 19 * l) // 433
    month = (h + l - 7 * m + 90) // 25
    return date(year, month, (h + l - 7 * m + 33 * month + 19) % 32)


def _weekday_between(first: date, weekday: int) -> date:
    """The given weekday in the seven days starting at `first` (Midsummer, All Saints')."""
    return first + timedelta(days=(weekday - first.weekday()) % 7)


def norwegian_holidays(year: int) -> set[date]:
    """Norway's public holidays (helligdager), plus 1 and 17 May."""
    easter = easter_sunday(year)
    moving = {-3, -2, 0, 1, 39, 49, 50}  # Maundy Thursday .. Whit Monday
    fixed = {date(year, 1, 1), date(year, 5, 1), date(year, 5, 17), date(year, 12, 25), date(year, 12, 26)}
    return fixed | {easter + timedelta(days=n) for n in moving}


def swedish_holidays(year: int) -> set[date]:
    """Sweden's public holidays (helgdagar) plus the eves offices close on in practice."""
    easter = easter_sunday(year)
    moving = {-2, 0, 1, 39, 49}  # Good Friday .. Whitsunday
    fixed = {date(year, m, d) for m, d in ((1, 1), (1, 6), (5, 1), (6, 6), (12, 24), (12, 25), (12, 26), (12, 31))}
    midsummer_eve = _weekday_between(date(year, 6, 19), 4)
    seasonal = {midsummer_eve, midsummer_eve + timedelta(days=1), _weekday_between(date(year, 10, 31), 5)}
    return fixed | seasonal | {easter + timedelta(days=n) for n in moving}
