"""Business-hours calendars: weekends, holidays, DST in Europe/Oslo, lunch breaks, 24/7."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from socialcrm.calendars import (
    BusinessCalendar,
    add_business_time,
    business_seconds_between,
    closing_time,
    easter_sunday,
    is_open,
    next_opening,
    norwegian_holidays,
    open_intervals,
    swedish_holidays,
    weekdays,
)

OSLO = ZoneInfo("Europe/Oslo")
HOUR = 3600.0
OFFICE = BusinessCalendar(hours=weekdays("08:00", "16:00"))
SEVEN_DAYS = BusinessCalendar(hours=weekdays("10:00", "18:00", days=range(7)), holidays=norwegian_holidays(2026))
ROUND_THE_CLOCK_HOURS = BusinessCalendar(hours=weekdays("00:00", "24:00", days=range(7)))
LUNCH = BusinessCalendar(hours={d: [("08:00", "11:30"), ("12:00", "16:00")] for d in range(5)})
ALWAYS = BusinessCalendar(always_open=True)


def oslo(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A wall-clock time in Oslo as the aware UTC instant the database stores."""
    return datetime(y, mo, d, h, mi, tzinfo=OSLO).astimezone(UTC)


# -- weekends, holidays, hours --------------------------------------------------------------

def test_weekend_is_closed() -> None:
    assert business_seconds_between(OFFICE, oslo(2026, 11, 20, 15), oslo(2026, 11, 23, 9)) == 2 * HOUR
    assert add_business_time(OFFICE, oslo(2026, 11, 20, 15, 30), HOUR) == oslo(2026, 11, 23, 8, 30)


def test_start_outside_hours_counts_from_next_opening() -> None:
    assert add_business_time(OFFICE, oslo(2026, 11, 21, 10), 30 * 60) == oslo(2026, 11, 23, 8, 30)
    assert add_business_time(OFFICE, oslo(2026, 11, 24, 6), 30 * 60) == oslo(2026, 11, 24, 8, 30)
    assert business_seconds_between(OFFICE, oslo(2026, 11, 21, 10), oslo(2026, 11, 23, 8)) == 0
    assert next_opening(OFFICE, oslo(2026, 11, 21, 10)) == oslo(2026, 11, 23, 8)


def test_seventeenth_of_may_is_closed_even_on_a_seven_day_desk() -> None:
    assert date(2026, 5, 17) in norwegian_holidays(2026)
    assert open_intervals(SEVEN_DAYS, date(2026, 5, 17)) == ()
    assert business_seconds_between(SEVEN_DAYS, oslo(2026, 5, 16, 17), oslo(2026, 5, 18, 11)) == 2 * HOUR
    assert add_business_time(SEVEN_DAYS, oslo(2026, 5, 16, 17, 30), HOUR) == oslo(2026, 5, 18, 10, 30)


def test_weekday_holiday_ascension_closes_a_weekday_office() -> None:
    cal = BusinessCalendar(hours=weekdays(), holidays=norwegian_holidays(2026))
    assert not is_open(cal, oslo(2026, 5, 14, 10))
    assert is_open(OFFICE, oslo(2026, 5, 14, 10))
    assert add_business_time(cal, oslo(2026, 5, 13, 15), 2 * HOUR) == oslo(2026, 5, 15, 9)


def test_a_deadline_can_fall_exactly_on_closing_time() -> None:
    assert add_business_time(OFFICE, oslo(2026, 11, 23, 15), HOUR) == oslo(2026, 11, 23, 16)
    assert add_business_time(OFFICE, oslo(2026, 11, 23, 15), HOUR + 1) == oslo(2026, 11, 24, 8, 0) + timedelta(seconds=1)


def test_is_open_intervals_are_half_open() -> None:
    assert is_open(OFFICE, oslo(2026, 11, 24, 8))
    assert is_open(OFFICE, oslo(2026, 11, 24, 15, 59))
    assert not is_open(OFFICE, oslo(2026, 11, 24, 16))
    assert not is_open(OFFICE, oslo(2026, 11, 22, 12))


def test_lunch_break_splits_the_day() -> None:
    assert business_seconds_between(LUNCH, oslo(2026, 11, 24, 11), oslo(2026, 11, 24, 13)) == 1.5 * HOUR
    assert add_business_time(LUNCH, oslo(2026, 11, 24, 11), HOUR) == oslo(2026, 11, 24, 12, 30)
    assert not is_open(LUNCH, oslo(2026, 11, 24, 11, 45))
    assert closing_time(LUNCH, oslo(2026, 11, 24, 9)) == oslo(2026, 11, 24, 11, 30)
    assert next_opening(LUNCH, oslo(2026, 11, 24, 11, 45)) == oslo(2026, 11, 24, 12)


def test_back_to_back_intervals_close_once() -> None:
    cal = BusinessCalendar(hours={0: [("08:00", "12:00"), ("12:00", "16:00")]})
    assert closing_time(cal, oslo(2026, 11, 23, 9)) == oslo(2026, 11, 23, 16)
    assert closing_time(cal, oslo(2026, 11, 23, 17)) is None


def test_always_open_is_plain_elapsed_time_and_ignores_holidays() -> None:
    cal = BusinessCalendar(always_open=True, holidays=norwegian_holidays(2026))
    start = oslo(2026, 5, 16, 23)
    assert add_business_time(cal, start, 5 * HOUR) == start + timedelta(hours=5)
    assert business_seconds_between(cal, start, start + timedelta(days=2)) == 48 * HOUR
    assert is_open(cal, oslo(2026, 5, 17, 3))
    assert closing_time(cal, start) is None


def test_end_before_start_is_zero() -> None:
    assert business_seconds_between(OFFICE, oslo(2026, 11, 24, 12), oslo(2026, 11, 24, 9)) == 0


# -- daylight saving time in Europe/Oslo ---------------------------------------------------------

def test_spring_forward_keeps_wall_clock_opening_hours() -> None:
    # Friday 27 March is CET (+01:00); Monday 30 March is CEST (+02:00): 08:00 local is 06:00 UTC.
    assert add_business_time(OFFICE, oslo(2026, 3, 27, 15, 30), HOUR) == datetime(2026, 3, 30, 6, 30, tzinfo=UTC)
    assert business_seconds_between(OFFICE, oslo(2026, 3, 27, 15), oslo(2026, 3, 30, 9)) == 2 * HOUR


def test_fall_back_keeps_wall_clock_opening_hours() -> None:
    assert add_business_time(OFFICE, oslo(2026, 10, 23, 15, 30), HOUR) == datetime(2026, 10, 26, 7, 30, tzinfo=UTC)
    assert business_seconds_between(OFFICE, oslo(2026, 10, 23, 15), oslo(2026, 10, 26, 9)) == 2 * HOUR


def test_dst_days_have_23_and_25_open_hours() -> None:
    assert business_seconds_between(ROUND_THE_CLOCK_HOURS, oslo(2026, 3, 29), oslo(2026, 3, 30)) == 23 * HOUR
    assert business_seconds_between(ROUND_THE_CLOCK_HOURS, oslo(2026, 10, 25), oslo(2026, 10, 26)) == 25 * HOUR
    assert business_seconds_between(ALWAYS, oslo(2026, 10, 24, 12), oslo(2026, 10, 25, 12)) == 25 * HOUR
    assert add_business_time(ROUND_THE_CLOCK_HOURS, oslo(2026, 3, 28, 12), 24 * HOUR) == oslo(2026, 3, 29, 13)


def test_sunday_hours_on_dst_sunday_are_eight_real_hours() -> None:
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        [(s, e)] = open_intervals(SEVEN_DAYS, day)
        assert (e - s).total_seconds() == 8 * HOUR
        assert s.astimezone(OSLO).hour == 10 and e.astimezone(OSLO).hour == 18


# -- properties over many random instants ---------------------------------------------------------

def _random_instant(rng: random.Random) -> datetime:
    """Minute-aligned instants through 2026, both DST changes included."""
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(365 * 24 * 60))


@pytest.mark.parametrize("cal", [OFFICE, SEVEN_DAYS, LUNCH, ROUND_THE_CLOCK_HOURS, ALWAYS])
def test_add_then_measure_gives_the_same_amount(cal: BusinessCalendar) -> None:
    rng = random.Random(5)
    for _ in range(300):
        start, seconds = _random_instant(rng), rng.uniform(0, 30 * HOUR)
        due = add_business_time(cal, start, seconds)
        assert due >= start
        assert business_seconds_between(cal, start, due) == pytest.approx(seconds, abs=1e-3)


@pytest.mark.parametrize("cal", [OFFICE, SEVEN_DAYS, LUNCH])
def test_measure_is_additive_and_deadline_falls_in_open_time(cal: BusinessCalendar) -> None:
    rng = random.Random(11)
    for _ in range(300):
        a = _random_instant(rng)
        b, c = sorted(a + timedelta(minutes=rng.randrange(14 * 24 * 60)) for _ in range(2))
        total = business_seconds_between(cal, a, c)
        assert total == pytest.approx(business_seconds_between(cal, a, b) + business_seconds_between(cal, b, c))
        due = add_business_time(cal, a, rng.uniform(1, 20 * HOUR))
        assert is_open(cal, due - timedelta(microseconds=1))


@pytest.mark.parametrize("cal", [OFFICE, SEVEN_DAYS, LUNCH])
def test_measure_agrees_with_counting_open_minutes(cal: BusinessCalendar) -> None:
    rng = random.Random(3)
    for _ in range(15):
        start = _random_instant(rng)
        minutes = rng.randrange(1, 4 * 24 * 60)
        counted = sum(is_open(cal, start + timedelta(minutes=m)) for m in range(minutes))
        assert business_seconds_between(cal, start, start + timedelta(minutes=minutes)) == counted * 60


# -- holidays ------------------------------------------------------------------------------------

@pytest.mark.parametrize("year, easter", [(2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)),
                                          (2026, date(2026, 4, 5)), (2027, date(2027, 3, 28)),
                                          (2038, date(2038, 4, 25)), (2285, date(2285, 3, 22))])
def test_easter(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_norwegian_holidays_2026() -> None:
    expected = {date(2026, 1, 1), date(2026, 4, 2), date(2026, 4, 3), date(2026, 4, 5), date(2026, 4, 6),
                date(2026, 5, 1), date(2026, 5, 14), date(2026, 5, 17), date(2026, 5, 24), date(2026, 5, 25),
                date(2026, 12, 25), date(2026, 12, 26)}
    assert norwegian_holidays(2026) == expected


def test_swedish_holidays_2026() -> None:
    got = swedish_holidays(2026)
    for day in (date(2026, 1, 6), date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 14), date(2026, 6, 6),
                date(2026, 6, 19), date(2026, 10, 31), date(2026, 12, 24), date(2026, 12, 31)):
        assert day in got
    assert date(2026, 4, 2) not in got and date(2026, 5, 25) not in got  # no Maundy Thursday, no Whit Monday
    assert len(got) == 16


def test_swedish_midsummer_and_all_saints_move_with_the_weekday() -> None:
    assert date(2027, 6, 25) in swedish_holidays(2027) and date(2027, 11, 6) in swedish_holidays(2027)
    for year in range(2020, 2040):
        eve = next(d for d in swedish_holidays(year) if d.month == 6 and 19 <= d.day <= 25 and d.weekday() == 4)
        assert eve + timedelta(days=1) in swedish_holidays(year)


def test_an_admin_edited_holiday_closes_the_day() -> None:
    company_day = BusinessCalendar(hours=weekdays(), holidays={date(2026, 11, 24)})
    assert business_seconds_between(company_day, oslo(2026, 11, 23, 12), oslo(2026, 11, 25, 12)) == 8 * HOUR
    assert business_seconds_between(OFFICE, oslo(2026, 11, 23, 12), oslo(2026, 11, 25, 12)) == 16 * HOUR


# -- the value itself ----------------------------------------------------------------------------

def test_calendar_is_a_hashable_value() -> None:
    a = BusinessCalendar(hours={0: [("08:00", "16:00")]}, holidays={date(2026, 1, 1)})
    b = BusinessCalendar(hours={0: (("08:00", "16:00"),)}, holidays=frozenset({date(2026, 1, 1)}))
    assert a == b and hash(a) == hash(b)
    assert a.hours[0] == (("08:00", "16:00"),) and a.hours[6] == ()


@pytest.mark.parametrize("hours", [{0: [("16:00", "08:00")]}, {0: [("08:00", "12:00"), ("11:00", "13:00")]},
                                   {7: [("08:00", "16:00")]}, {0: [("08:00", "25:00")]}, {0: [("24:30", "24:45")]}])
def test_bad_hours_are_refused(hours: dict) -> None:
    with pytest.raises(ValueError):
        BusinessCalendar(hours=hours)


def test_bad_zone_and_naive_times_are_refused() -> None:
    with pytest.raises(ZoneInfoNotFoundError):
        BusinessCalendar(tz="Europe/Olso")
    with pytest.raises(ValueError):
        business_seconds_between(OFFICE, datetime(2026, 11, 23, 9), datetime(2026, 11, 23, 10))


def test_a_calendar_that_never_opens_has_no_deadline() -> None:
    with pytest.raises(ValueError):
        add_business_time(BusinessCalendar(), oslo(2026, 11, 23), 60)
    assert business_seconds_between(BusinessCalendar(), oslo(2026, 11, 23), oslo(2026, 12, 23)) == 0


def test_other_time_zone() -> None:
    helsinki = BusinessCalendar(tz="Europe/Helsinki", hours=weekdays())
    assert next_opening(helsinki, oslo(2026, 11, 23, 6)) == oslo(2026, 11, 23, 7)
