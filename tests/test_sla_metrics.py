"""SLA timelines from the event log: pauses, reopens, bots, next responses, explanations, figures."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from socialcrm.calendars import BusinessCalendar, weekdays
from socialcrm.metrics import (
    Event,
    SlaPolicy,
    at_risk,
    breached_open,
    event_from_row,
    events_from_rows,
    next_due,
    timeline,
    used_seconds,
)
from socialcrm.sla_figures import (
    by_agent,
    by_attr,
    by_visibility,
    fcr_outcome,
    first_contact_resolution,
    median,
    percentile,
    summarize,
)
from socialcrm.models import ConversationEvent

OSLO = ZoneInfo("Europe/Oslo")
OFFICE = BusinessCalendar(hours=weekdays("08:00", "17:00"))
ALWAYS = BusinessCalendar(always_open=True)
POLICY = SlaPolicy(first_response_minutes=60, next_response_minutes=60, resolution_minutes=480, calendar=OFFICE)
ALWAYS_POLICY = SlaPolicy(60, 60, 480, calendar=ALWAYS)
FIGURES_POLICY = SlaPolicy(60, 60, 24 * 60, calendar=ALWAYS)  # resolution clocks stay in time all day
AGENT, OTHER = 7, 8


def oslo(d: int, h: int, mi: int = 0, *, month: int = 11) -> datetime:
    """November 2026 in Oslo (Fri 20, Mon 23, Tue 24), as stored: aware UTC."""
    return datetime(2026, month, d, h, mi, tzinfo=OSLO).astimezone(UTC)


def customer(at: datetime) -> Event:
    return Event("customer_message", at)


def reply(at: datetime, user: int | None = AGENT, kind: str = "responded", **detail: object) -> Event:
    return Event(kind, at, user, detail)


def ev(kind: str, at: datetime, user: int | None = None) -> Event:
    return Event(kind, at, user)


FRIDAY_EVENING = [Event("created", oslo(20, 16, 55), None, {"public": True}), customer(oslo(20, 16, 55)),
                  reply(oslo(23, 8, 20), kind="first_response")]


# -- the first response -------------------------------------------------------------------------

def test_first_response_across_a_weekend_with_explanation() -> None:
    tl = timeline(FRIDAY_EVENING, POLICY, now=oslo(25, 12))
    fr = tl.first_response
    assert fr is not None and fr.business_minutes == 25 and fr.status == "met"
    assert fr.started_at == oslo(20, 16, 55) and fr.answered_at == oslo(23, 8, 20)
    assert fr.due_at == oslo(23, 8, 55) and fr.agent_id == AGENT
    assert fr.explanation == ("customer wrote Fri 16:55; business hours ended 17:00; "
                              "first reply Mon 08:20 = 25 business minutes, target 60: met")
    assert tl.public is True


def test_calendar_change_recomputes_a_past_breach() -> None:
    """The same log: 24/7 says breached (63 h); the team's real hours say met (25 min)."""
    before = timeline(FRIDAY_EVENING, ALWAYS_POLICY, now=oslo(25, 12)).first_response
    after = timeline(FRIDAY_EVENING, POLICY, now=oslo(25, 12)).first_response
    assert before.status == "breached" and before.business_minutes == 63 * 60 + 25
    assert before.explanation.endswith("= 3805 business minutes, target 60: breached")
    assert after.status == "met"


def test_an_added_holiday_recomputes_history() -> None:
    events = [customer(oslo(23, 16, 30)), reply(oslo(25, 8, 10))]
    plain = timeline(events, POLICY, now=oslo(25, 12)).first_response
    holiday = SlaPolicy(60, 60, 480, BusinessCalendar(hours=weekdays("08:00", "17:00"), holidays={date(2026, 11, 24)}))
    with_holiday = timeline(events, holiday, now=oslo(25, 12)).first_response
    assert (plain.status, plain.business_minutes) == ("breached", 30 + 540 + 10)
    assert (with_holiday.status, with_holiday.business_minutes) == ("met", 40)


def test_start_outside_hours_is_explained() -> None:
    tl = timeline([customer(oslo(21, 11)), reply(oslo(23, 8, 45))], POLICY, now=oslo(23, 9))
    assert tl.first_response.business_minutes == 45
    assert tl.first_response.explanation == ("customer wrote Sat 11:00; outside business hours, clock started "
                                             "Mon 08:00; first reply Mon 08:45 = 45 business minutes, target 60: met")


def test_dst_weekend_in_the_timeline() -> None:
    events = [customer(oslo(27, 16, 30, month=3)), reply(oslo(30, 8, 40, month=3))]
    fr = timeline(events, POLICY, now=oslo(31, 12, month=3)).first_response
    assert fr.business_minutes == 70 and fr.status == "breached"
    assert fr.due_at == datetime(2026, 3, 30, 6, 30, tzinfo=UTC)  # 08:30 CEST
    assert "first reply Mon 08:40 = 70 business minutes" in fr.explanation


def test_an_automated_reply_does_not_stop_the_clock() -> None:
    events = [customer(oslo(24, 9)), reply(oslo(24, 9, 0), None, kind="first_response", automated=True),
              reply(oslo(24, 10, 30), AGENT)]
    tl = timeline(events, POLICY, now=oslo(24, 12))
    assert tl.first_response.answered_at == oslo(24, 10, 30)
    assert (tl.first_response.status, tl.first_response.business_minutes) == ("breached", 90)
    assert tl.first_response.agent_id == AGENT and tl.agent_responses == 1 and tl.next_responses == ()


def test_a_native_app_reply_counts_as_a_person() -> None:
    events = [customer(oslo(24, 9)), reply(oslo(24, 9, 20), None, kind="first_response", via="native app")]
    fr = timeline(events, POLICY, now=oslo(24, 12)).first_response
    assert fr.status == "met" and fr.answered_at == oslo(24, 9, 20)
    assert "first reply (native app) Tue 09:20" in fr.explanation


# -- next responses, pauses, reopen -------------------------------------------------------------------

def test_next_response_starts_at_the_first_new_customer_message() -> None:
    events = [customer(oslo(24, 9)), reply(oslo(24, 9, 5)), customer(oslo(24, 9, 30)), customer(oslo(24, 9, 50)),
              reply(oslo(24, 10, 40), OTHER), customer(oslo(24, 11))]
    tl = timeline(events, POLICY, now=oslo(24, 11, 30))
    done, running = tl.next_responses
    assert (done.started_at, done.business_minutes, done.status, done.agent_id) == (oslo(24, 9, 30), 70, "breached", OTHER)
    assert done.explanation.startswith("customer wrote Tue 09:30; next reply Tue 10:40")
    assert (running.status, running.answered_at, running.business_minutes) == ("running", None, 30)
    assert running.explanation.endswith("no reply yet at Tue 11:30 = 30 business minutes so far, target 60: running")
    assert tl.first_response.business_minutes == 5


def test_pending_pauses_a_running_clock_until_the_customer_writes() -> None:
    events = [customer(oslo(24, 9)), ev("pending", oslo(24, 9, 5), AGENT), ev("open", oslo(24, 10, 5), AGENT),
              reply(oslo(24, 10, 15))]
    fr = timeline(events, POLICY, now=oslo(24, 12)).first_response
    assert fr.business_minutes == 15 and fr.status == "met"
    assert fr.due_at == oslo(24, 11)  # 5 min before the pause, 55 after it
    assert "waiting on customer Tue 09:05-Tue 10:05" in fr.explanation


def test_pending_pauses_resolution_and_the_customer_restarts_it() -> None:
    events = [customer(oslo(24, 9)), reply(oslo(24, 9, 20)), ev("pending", oslo(24, 9, 20), AGENT),
              customer(oslo(24, 13)), reply(oslo(24, 13, 30)), ev("resolved", oslo(24, 13, 40), AGENT)]
    tl = timeline(events, POLICY, now=oslo(24, 16))
    assert tl.resolution.business_minutes == 20 + 40 and tl.resolution.status == "met"
    assert tl.resolution.answered_at == oslo(24, 13, 40) and tl.resolution.agent_id == AGENT
    [nxt] = tl.next_responses
    assert (nxt.started_at, nxt.business_minutes) == (oslo(24, 13), 30)


def test_a_paused_clock_has_no_deadline_and_is_not_at_risk() -> None:
    events = [customer(oslo(24, 9)), ev("pending", oslo(24, 9, 55), AGENT)]
    tl = timeline(events, POLICY, now=oslo(24, 15))
    fr = tl.first_response
    assert fr.paused and fr.due_at is None and fr.business_minutes == 55 and fr.status == "running"
    assert not at_risk(tl, oslo(24, 16)) and next_due(tl) is None
    assert fr.explanation.endswith("waiting on customer since Tue 09:55; no reply yet at Tue 15:00 "
                                   "= 55 business minutes so far, target 60: running")


def test_reopen_starts_a_next_response_clock_and_keeps_the_first_response() -> None:
    events = [customer(oslo(24, 9)), reply(oslo(24, 9, 10), kind="first_response"), ev("resolved", oslo(24, 9, 15)),
              ev("reopened", oslo(24, 11)), customer(oslo(24, 11)), reply(oslo(24, 11, 45), OTHER),
              ev("resolved", oslo(24, 12), OTHER)]
    tl = timeline(events, POLICY, now=oslo(24, 16))
    assert tl.first_response.business_minutes == 10 and tl.first_response.agent_id == AGENT
    [nxt] = tl.next_responses
    assert (nxt.started_at, nxt.business_minutes, nxt.status) == (oslo(24, 11), 45, "met")
    assert tl.resolution.business_minutes == 15 + 60  # the time it sat resolved does not count
    assert tl.resolution.answered_at == oslo(24, 12) and tl.resolution.agent_id == OTHER


def test_an_agent_reopen_alone_starts_a_next_response_clock() -> None:
    events = [customer(oslo(24, 9)), reply(oslo(24, 9, 10)), ev("resolved", oslo(24, 9, 15)),
              ev("reopened", oslo(24, 10), AGENT)]
    [nxt] = timeline(events, POLICY, now=oslo(24, 10, 50)).next_responses
    assert nxt.explanation.startswith("reopened Tue 10:00") and nxt.status == "running"


def test_resolving_without_a_reply_closes_the_clock_without_a_verdict() -> None:
    events = [customer(oslo(24, 9)), reply(oslo(24, 9, 10)), customer(oslo(24, 9, 20)), ev("resolved", oslo(24, 9, 30))]
    tl = timeline(events, POLICY, now=oslo(24, 16))
    [nxt] = tl.next_responses
    assert nxt.status == "closed" and nxt.answered_at is None
    assert "resolved Tue 09:30 without a reply" in nxt.explanation
    late = timeline(events[:3] + [ev("resolved", oslo(24, 11))], POLICY, now=oslo(24, 16)).next_responses[0]
    assert late.status == "breached"


def test_a_running_clock_past_its_target_is_already_breached() -> None:
    tl = timeline([customer(oslo(24, 9))], POLICY, now=oslo(24, 10, 30))
    assert tl.first_response.status == "breached" and tl.first_response.answered_at is None
    assert breached_open(tl, oslo(24, 10, 30)) and not at_risk(tl, oslo(24, 10, 30))


def test_at_risk_uses_the_fraction_and_business_time() -> None:
    tl = timeline([customer(oslo(20, 16, 50))], POLICY, now=oslo(20, 16, 55))
    assert next_due(tl) == oslo(23, 8, 50)
    assert not at_risk(tl, oslo(23, 8, 37))            # 47 of 60 minutes: 78 %
    assert at_risk(tl, oslo(23, 8, 38))                # 48 of 60: 80 %
    assert used_seconds(tl, tl.first_response, oslo(23, 8, 38)) == 48 * 60
    assert not breached_open(tl, oslo(23, 8, 50)) and breached_open(tl, oslo(23, 8, 51))
    strict = SlaPolicy(60, 60, 480, OFFICE, at_risk_fraction=0.5)
    assert at_risk(timeline([customer(oslo(20, 16, 50))], strict, now=oslo(20, 16, 55)), oslo(23, 8, 20))


def test_events_after_now_are_not_known_yet() -> None:
    tl = timeline(FRIDAY_EVENING, POLICY, now=oslo(23, 8))
    assert tl.first_response.status == "running" and tl.first_response.business_minutes == 5


def test_an_echo_conversation_has_no_clock_until_the_customer_writes() -> None:
    events = [Event("created", oslo(24, 9), None, {"public": False}), ev("resolved", oslo(24, 9)),
              ev("reopened", oslo(24, 10)), customer(oslo(24, 10)), reply(oslo(24, 10, 30))]
    assert timeline(events[:2], POLICY, now=oslo(24, 12)).clocks == ()
    tl = timeline(events, POLICY, now=oslo(24, 12))
    assert tl.first_response.started_at == oslo(24, 10) and tl.next_responses == ()


def test_met_exactly_when_answered_by_the_deadline() -> None:
    """The verdict and the deadline come from separate code; they must agree on random logs."""
    rng = random.Random(42)
    kinds = ["customer_message"] * 4 + ["responded"] * 3 + ["pending", "open", "resolved", "reopened"]
    for _ in range(200):
        at, events = oslo(20, 9), []
        for _ in range(rng.randrange(2, 14)):
            at += timedelta(minutes=rng.randrange(1, 600))
            events.append(Event(rng.choice(kinds), at, AGENT, {"automated": rng.random() < 0.1}))
        for clock in timeline(events, POLICY, now=at + timedelta(hours=1)).clocks:
            if clock.answered_at is not None:
                assert (clock.status == "met") == (clock.answered_at <= clock.due_at), clock.explanation


# -- rows from the database ---------------------------------------------------------------------

def test_events_come_from_rows_in_time_order() -> None:
    rows = [ConversationEvent(conversation_id=1, kind="responded", at=oslo(24, 10), user_id=3, detail={}),
            {"kind": "customer_message", "at": oslo(24, 9), "user_id": None, "detail": None}]
    first, second = events_from_rows(rows)
    assert first == Event("customer_message", oslo(24, 9), None, {})
    assert second == event_from_row(rows[0]) == Event("responded", oslo(24, 10), 3, {})


# -- figures over many conversations -----------------------------------------------------------

def test_median_and_nearest_rank_p90() -> None:
    assert median([15, 20, 35, 40, 50]) == 35 and median([1, 2, 3, 4]) == 2.5
    assert percentile([15, 20, 35, 40, 50], 90) == 50 and percentile(list(range(1, 11)), 90) == 9
    assert percentile([7], 90) == 7 and median([]) is None and percentile([], 90) is None


def _answered(conv_id: int, minutes: int, agent: int, channel: str, public: bool) -> object:
    events = [Event("created", oslo(24, 9), None, {"public": public}), customer(oslo(24, 9)),
              reply(oslo(24, 9) + timedelta(minutes=minutes), agent, kind="first_response")]
    return timeline(events, FIGURES_POLICY, now=oslo(24, 23), conversation_id=conv_id, attrs={"channel": channel})


def test_summary_medians_p90_and_attainment() -> None:
    minutes = [10, 30, 70, 90, 20, 5, 45, 50, 55, 120]
    tls = [_answered(i, m, AGENT if i % 2 else OTHER, "facebook" if i < 5 else "x", i < 3)
           for i, m in enumerate(minutes)]
    tls.append(timeline([customer(oslo(24, 22, 30))], FIGURES_POLICY, now=oslo(24, 23), conversation_id=99))
    [everything] = summarize(tls).values()
    assert everything.first_response_median == 47.5 and everything.first_response_p90 == 90
    assert (everything.met, everything.breached) == (7, 3)  # the running one has no verdict
    assert everything.attainment_pct == everything.first_response_attainment_pct == 70.0
    assert everything.conversations == 11 and set(everything.breached_ids) == {2, 3, 9}
    by_channel = summarize(tls, by_attr("channel"))
    assert by_channel["facebook"].first_response_median == 30 and by_channel["facebook"].attainment_pct == 60.0
    assert by_channel["x"].attainment_pct == 80.0 and by_channel["x"].first_response_p90 == 120
    assert summarize(tls, by_visibility)["public"].conversations == 3
    agents = summarize(tls, by_agent)
    assert agents[AGENT].conversation_ids == (1, 3, 5, 7, 9) and agents[OTHER].first_response_median == 45
    assert agents[None].first_response_median is None and 99 in agents[None].conversation_ids  # nobody answered yet


def test_summary_next_response_and_resolution_medians() -> None:
    def conv(i: int, nxt: int, res: int) -> object:
        events = [customer(oslo(24, 9)), reply(oslo(24, 9, 1)), customer(oslo(24, 10)),
                  reply(oslo(24, 10) + timedelta(minutes=nxt)), ev("resolved", oslo(24, 9) + timedelta(minutes=res))]
        return timeline(events, ALWAYS_POLICY, now=oslo(24, 23), conversation_id=i)
    [s] = summarize([conv(1, 10, 100), conv(2, 20, 200), conv(3, 90, 600)]).values()
    assert s.next_response_median == 20 and s.resolution_median == 200
    assert s.attainment_pct == pytest.approx(100 * 7 / 9)  # one next response and one resolution breached


def test_first_contact_resolution() -> None:
    now = oslo(25, 12)
    def conv(resolved_days_ago: float, replies: int = 1, reopen_after_days: float | None = None,
             bot: bool = False) -> list[Event]:
        resolved = now - timedelta(days=resolved_days_ago)
        start = resolved - timedelta(hours=2)
        events = [customer(start)] + [reply(start + timedelta(minutes=i + 1)) for i in range(replies)]
        events += [reply(start, None, automated=True)] if bot else []
        events.append(ev("resolved", resolved))
        if reopen_after_days is not None:
            events.append(ev("reopened", resolved + timedelta(days=reopen_after_days)))
        return events
    logs = {"one": conv(10), "two replies": conv(10, replies=2), "reopened": conv(10, reopen_after_days=3),
            "late reopen": conv(20, reopen_after_days=8), "recent": conv(2), "open": [customer(now)],
            "bot and one": conv(9, bot=True), "no reply": conv(9, replies=0)}
    result = first_contact_resolution(logs, now)
    assert set(result.first_contact) == {"one", "late reopen", "bot and one"}
    assert set(result.not_first_contact) == {"two replies", "reopened", "no reply"}
    assert result.undecided == ("recent",) and result.rate_pct == 50.0
    assert fcr_outcome(logs["open"], now) is None
    assert fcr_outcome(conv(2, reopen_after_days=1), now) == "no"


def test_a_conversation_marked_spam_has_no_clocks_until_taken_back() -> None:
    unanswered = [customer(oslo(23, 9)), customer(oslo(23, 9, 5))]
    breached = timeline(unanswered, ALWAYS_POLICY, oslo(23, 12))
    assert breached.first_response is not None and breached.first_response.status == "breached"
    spam = timeline([*unanswered, ev("spam", oslo(23, 9, 30))], ALWAYS_POLICY, oslo(23, 12))
    assert (spam.first_response, spam.next_responses, spam.resolution) == (None, (), None)
    taken_back = timeline([*unanswered, ev("spam", oslo(23, 9, 30)), ev("not_spam", oslo(23, 10))],
                          ALWAYS_POLICY, oslo(23, 12))
    assert taken_back.first_response is not None and taken_back.first_response.status == "breached"
