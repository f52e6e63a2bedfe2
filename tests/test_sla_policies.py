"""SLA policies in production: stored targets and calendars, deadlines through ingest, pauses,
reopens, automated replies, the at-risk band, and timelines recounted after a calendar change.

Every test runs on SQLite and PostgreSQL with a fixed clock: event times are given, `now` is
passed in, and the few actions that read the wall clock (pending, resolve, reopen) run with it
patched to a fixed instant.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from socialcrm import conversations, eventlog, ingest, inbox, models, sla, sla_policies
from socialcrm.calendars import BusinessCalendar, norwegian_holidays, weekdays
from socialcrm.sla_policies import CalendarSettings, SlaRejected, StoredTargets
from socialcrm.users import Viewer
from tests.support import add_agent, add_team_and_channel, ev, minutes, running_core

OSLO = ZoneInfo("Europe/Oslo")
conv_t, event_t = models.Conversation.__table__, models.ConversationEvent.__table__
OFFICE = CalendarSettings(always_open=False, hours={d: (("08:00", "17:00"),) for d in range(5)})
T1 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)   # a Monday


def oslo(*args: int) -> datetime:
    return datetime(*args, tzinfo=OSLO).astimezone(UTC)


@pytest.fixture
async def core(database_url: str, tmp_path):
    async with running_core(database_url, data_dir=tmp_path) as core:
        yield core


@pytest.fixture
async def channel(core) -> int:
    return await add_team_and_channel(core)


async def team_of(core, channel_id: int) -> int:
    return (await core.channels.get(channel_id)).info.team_id


async def feed(core, channel_id: int, events: list, now: datetime) -> None:
    ch = await core.channels.get(channel_id)
    async with core.engine.begin() as conn:
        await ingest.apply(conn, ch.info, events, now=now)


async def conv_row(core, external_id: str = "m-1"):
    m = models.Message.__table__
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(conv_t).join(m, m.c.conversation_id == conv_t.c.id)
                                   .where(m.c.external_id == external_id))).one()


async def timeline_of(core, conv_id: int, now: datetime):
    async with core.engine.connect() as conn:
        return await sla_policies.conversation_timeline(conn, conv_id, now)


async def store_calendar(core, team_id: int, settings: CalendarSettings) -> None:
    async with core.engine.begin() as conn:
        await sla_policies.save_calendar(conn, None, team_id, settings)


async def store_targets(core, channel_id: int, public: StoredTargets, private: StoredTargets) -> None:
    async with core.engine.begin() as conn:
        await sla_policies.save_targets(conn, None, channel_id, {True: public, False: private})
    core.channels.invalidate()


def fixed_clock(monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
    """The agent actions log with the wall clock: pin it."""
    for module in (eventlog, conversations):
        monkeypatch.setattr(module, "utcnow", lambda: at)


def comment(external_id: str, at: datetime, **kw):
    return ev("comment", external_id, "post-1", public=True, at=at, **kw)


def echo(external_id: str, at: datetime, *, public: bool = True, automated: bool = False):
    return ev("echo", external_id, "post-1" if public else "cust-1", author="brand", is_self=True, public=public,
              at=at, in_reply_to="m-1", detail={"automated": True} if automated else None)


# -- the stored setup ------------------------------------------------------------------------

async def test_without_anything_stored_the_defaults_apply(core, channel) -> None:
    async with core.engine.connect() as conn:
        setup = await sla_policies.load_sla_setup(conn)
    public, private = setup.policy(channel, True), setup.policy(channel, False)
    assert (public.first_response_minutes, public.next_response_minutes, public.resolution_minutes) == (60, 60, 1440)
    assert (private.first_response_minutes, private.resolution_minutes) == (240, 4320)
    assert public.calendar.always_open and public.calendar.tz == "Europe/Oslo" and public.at_risk_fraction == 0.8
    assert setup.policy(999, True).first_response_minutes == 60          # an unknown channel: the defaults
    assert setup.calendar(await team_of(core, channel)) == setup.calendar(999)


async def test_stored_targets_and_calendar_make_the_policy(core, channel) -> None:
    team = await team_of(core, channel)
    await store_targets(core, channel, StoredTargets(45, 20, None), StoredTargets(None, None, 600))
    await store_calendar(core, team, replace(OFFICE, at_risk_fraction=0.5))
    async with core.engine.connect() as conn:
        setup = await sla_policies.load_sla_setup(conn)
        first_column = await conn.scalar(sa.select(models.Channel.__table__.c.sla_public_minutes))
    public, private = setup.policy(channel, True), setup.policy(channel, False)
    assert (public.first_response_minutes, public.next_response_minutes, public.resolution_minutes) == (45, 20, 1440)
    assert (private.first_response_minutes, private.next_response_minutes, private.resolution_minutes) == (240, 240, 600)
    assert first_column == 45          # the channel page's own column: one place for the number
    assert public.calendar == BusinessCalendar(hours=weekdays("08:00", "17:00")) and public.at_risk_fraction == 0.5
    assert setup.calendar(team) is public.calendar


@pytest.mark.parametrize("bad, words", [
    (CalendarSettings(tz="Europe/Olso"), "not a time zone"),
    (CalendarSettings(always_open=False), "at least one weekday"),
    (CalendarSettings(always_open=False, hours={0: (("17:00", "08:00"),)}), "Monday: opening 17:00-08:00"),
    (CalendarSettings(at_risk_fraction=1.0), "between 1 and 99 percent"),
])
async def test_a_bad_calendar_is_refused_and_nothing_is_stored(core, channel, bad, words) -> None:
    with pytest.raises(SlaRejected, match=words):
        await store_calendar(core, await team_of(core, channel), bad)
    async with core.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(models.TeamCalendar.__table__)) == 0
        assert await conn.scalar(sa.select(sa.func.count()).select_from(models.AuditEntry.__table__)) == 0


# -- deadlines counted in business hours, through ingest -------------------------------------

async def test_a_message_late_on_friday_is_due_on_monday_and_the_reply_is_explained(core, channel) -> None:
    await store_calendar(core, await team_of(core, channel), OFFICE)
    wrote, replied = oslo(2026, 11, 27, 16, 55), oslo(2026, 11, 30, 8, 20)
    await feed(core, channel, [comment("m-1", wrote)], now=wrote)
    row = await conv_row(core)
    assert row.sla_due_at == oslo(2026, 11, 30, 8, 55)        # 5 minutes on Friday, 55 on Monday
    await feed(core, channel, [echo("r-1", replied)], now=replied)
    tl = await timeline_of(core, row.id, replied + timedelta(hours=1))
    assert tl.first_response.status == "met" and round(tl.first_response.business_minutes) == 25
    assert tl.first_response.explanation == ("customer wrote Fri 16:55; business hours ended 17:00; "
                                             "first reply (native app) Mon 08:20 = 25 business minutes, target 60: met")


async def test_a_public_holiday_is_skipped(core, channel) -> None:
    team = await team_of(core, channel)
    await store_calendar(core, team, sla_policies.with_public_holidays(OFFICE, "NO", 2026))
    wrote = oslo(2026, 5, 13, 16, 30)                         # the day before Ascension Day
    await feed(core, channel, [ev("message", "m-1", "cust-1", at=wrote)], now=wrote)
    assert date(2026, 5, 14) in norwegian_holidays(2026)
    # private: 240 minutes = 30 on Wednesday, none on Thursday (holiday), 210 on Friday from 08:00
    assert (await conv_row(core)).sla_due_at == oslo(2026, 5, 15, 11, 30)


async def test_the_daylight_saving_change_keeps_local_opening_hours(core, channel) -> None:
    every_day = CalendarSettings(always_open=False, hours={d: (("08:00", "16:00"),) for d in range(7)})
    await store_calendar(core, await team_of(core, channel), every_day)
    wrote = oslo(2026, 3, 28, 15, 30)                         # Saturday; clocks go forward that night
    await feed(core, channel, [comment("m-1", wrote)], now=wrote)
    # 30 minutes on Saturday, 30 more from Sunday 08:00 local, which is 06:00 UTC in summer time
    assert (await conv_row(core)).sla_due_at == datetime(2026, 3, 29, 6, 30, tzinfo=UTC)


async def test_pending_pauses_the_clock_and_the_customer_resumes_it(core, channel, monkeypatch) -> None:
    agent = await add_agent(core, "kari", online=False)
    await feed(core, channel, [comment("m-1", T1)], now=T1)
    row = await conv_row(core)
    fixed_clock(monkeypatch, T1 + minutes(10))
    await conversations.set_pending(core, row.id, agent)
    back = T1 + minutes(130)
    await feed(core, channel, [comment("m-2", back)], now=back)
    row = await conv_row(core)
    # 10 of 60 minutes were used before the pause; the two hours waiting on the customer do not count
    assert (row.status, row.waiting_since, row.sla_due_at) == ("open", T1, back + minutes(50))
    assert row.sla_risk_at == back + minutes(38)              # 48 of 60 minutes used
    first = (await timeline_of(core, row.id, back + minutes(5))).first_response
    assert first.status == "running" and round(first.business_minutes) == 15 and len(first.segments) == 2


async def test_the_agent_ending_a_pause_resumes_the_same_clock(core, channel, monkeypatch) -> None:
    agent = await add_agent(core, "kari", online=False)
    await feed(core, channel, [comment("m-1", T1)], now=T1)
    conv = (await conv_row(core)).id
    fixed_clock(monkeypatch, T1 + minutes(20))
    await conversations.set_pending(core, conv, agent)
    fixed_clock(monkeypatch, T1 + minutes(80))
    await conversations.reopen(core, conv, agent)
    row = await conv_row(core)
    assert (row.status, row.sla_due_at) == ("open", T1 + minutes(120))   # 40 minutes left after 20 used


async def test_a_reopen_starts_a_next_response_clock_and_leaves_the_first_alone(core, channel, monkeypatch) -> None:
    agent = await add_agent(core, "kari", online=False)
    await store_targets(core, channel, StoredTargets(None, 30, None), StoredTargets())
    await feed(core, channel, [comment("m-1", T1)], now=T1)
    await feed(core, channel, [echo("r-1", T1 + minutes(5))], now=T1 + minutes(5))
    conv = (await conv_row(core)).id
    fixed_clock(monkeypatch, T1 + minutes(10))
    await conversations.resolve(core, conv, agent)
    again = T1 + minutes(60)
    await feed(core, channel, [comment("m-2", again)], now=again)
    row = await conv_row(core)
    assert (row.status, row.waiting_since, row.sla_due_at) == ("open", again, again + minutes(30))
    tl = await timeline_of(core, conv, again + minutes(10))
    assert tl.first_response.status == "met" and round(tl.first_response.business_minutes) == 5
    assert [(c.started_at, c.target_seconds, c.status) for c in tl.next_responses] == [(again, 1800.0, "running")]

    fixed_clock(monkeypatch, again + minutes(15))
    await conversations.resolve(core, conv, agent)
    fixed_clock(monkeypatch, again + minutes(40))
    await conversations.reopen(core, conv, agent)                 # by hand this time
    row = await conv_row(core)
    assert (row.waiting_since, row.sla_due_at) == (again + minutes(40), again + minutes(70))


async def test_an_automated_reply_stops_no_clock(core, channel) -> None:
    await feed(core, channel, [comment("m-1", T1)], now=T1)
    await feed(core, channel, [echo("auto-1", T1 + minutes(1), automated=True)], now=T1 + minutes(1))
    row = await conv_row(core)
    assert (row.waiting_since, row.sla_due_at, row.first_response_at) == (T1, T1 + minutes(60), None)
    async with core.engine.connect() as conn:
        logged = (await conn.execute(sa.select(event_t.c.kind, event_t.c.detail)
                                     .where(event_t.c.conversation_id == row.id).order_by(event_t.c.id))).all()
    assert ("responded", {"via": "native app", "automated": True}) in [(k, d) for k, d in logged]
    await feed(core, channel, [echo("r-1", T1 + minutes(70))], now=T1 + minutes(70))
    tl = await timeline_of(core, row.id, T1 + minutes(80))
    assert tl.first_response.answered_at == T1 + minutes(70) and tl.first_response.status == "breached"
    assert tl.agent_responses == 1                                # the machine's message is not a response


async def test_a_second_customer_message_starts_the_next_response_clock(core, channel) -> None:
    await store_targets(core, channel, StoredTargets(None, 30, None), StoredTargets())
    await feed(core, channel, [comment("m-1", T1)], now=T1)
    await feed(core, channel, [echo("r-1", T1 + minutes(5))], now=T1 + minutes(5))
    assert (await conv_row(core)).sla_due_at is None
    await feed(core, channel, [comment("m-2", T1 + minutes(60))], now=T1 + minutes(60))
    await feed(core, channel, [comment("m-3", T1 + minutes(70))], now=T1 + minutes(70))   # still waiting: no restart
    row = await conv_row(core)
    assert (row.waiting_since, row.sla_due_at) == (T1 + minutes(60), T1 + minutes(90))
    tl = await timeline_of(core, row.id, T1 + minutes(75))
    assert len(tl.next_responses) == 1 and tl.next_responses[0].started_at == T1 + minutes(60)


async def test_changing_the_calendar_recounts_a_past_breach(core, channel) -> None:
    wrote, replied = oslo(2026, 11, 27, 16, 55), oslo(2026, 11, 30, 8, 20)
    await feed(core, channel, [comment("m-1", wrote)], now=wrote)
    await feed(core, channel, [echo("r-1", replied)], now=replied)
    conv, later = (await conv_row(core)).id, replied + timedelta(days=2)
    before = (await timeline_of(core, conv, later)).first_response
    assert before.status == "breached" and before.explanation.endswith("target 60: breached")   # counted 24/7
    await store_calendar(core, await team_of(core, channel), OFFICE)
    after = (await timeline_of(core, conv, later)).first_response
    assert after.status == "met" and after.explanation.endswith("= 25 business minutes, target 60: met")


# -- at risk -----------------------------------------------------------------------------------

async def test_a_conversation_at_risk_is_raised_flagged_and_alerts_the_leads(core, channel) -> None:
    await feed(core, channel, [comment("m-1", T1)], now=T1)
    row = await conv_row(core)
    assert row.sla_risk_at == T1 + minutes(48) and not sla.is_raised(row.priority)
    async with core.engine.begin() as conn:
        assert await sla_policies.raise_at_risk(conn, T1 + minutes(47)) == []
        raised = await sla_policies.raise_at_risk(conn, T1 + minutes(48))
        assert await sla_policies.raise_at_risk(conn, T1 + minutes(49)) == []     # once
        alerts = await sla_policies.public_alerts(conn, None)
    assert [r.conversation_id for r in raised] == [row.id]
    assert sla.is_raised((await conv_row(core)).priority) and [a.id for a in alerts] == [row.id]
    lead = Viewer(0, "lead", "", "lead", False, 0, frozenset())
    [shown] = await inbox.queue(core.engine, lead, "all", now=T1 + minutes(50))
    assert shown.at_risk
    [overdue] = await inbox.queue(core.engine, lead, "all", now=T1 + minutes(61))
    assert not overdue.at_risk                                    # breached is not "breaching soon"


async def test_at_risk_outranks_visibility_in_the_queue(core, channel) -> None:
    await feed(core, channel, [ev("message", "dm-1", "cust-9", author="cust-9", at=T1)], now=T1)
    later = T1 + minutes(200)                                     # the DM has used 200 of its 240 minutes
    await feed(core, channel, [comment("m-1", later, author="cust-2")], now=later)
    async with core.engine.begin() as conn:
        await sla_policies.raise_at_risk(conn, later)
    lead = Viewer(0, "lead", "", "lead", False, 0, frozenset())
    order = [r.public for r in await inbox.queue(core.engine, lead, "all", now=later)]
    assert order == [False, True]


async def test_a_message_ingested_after_its_risk_point_is_raised_at_once(core, channel) -> None:
    await feed(core, channel, [comment("m-1", T1)], now=T1 + minutes(55))
    assert sla.is_raised((await conv_row(core)).priority)


async def test_ingest_reads_the_stored_setup_once_not_per_event(core, channel) -> None:
    seen: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if "teamcalendar" in statement:
            seen.append(statement)

    await feed(core, channel, [comment("m-0", T1, author="c-0")], now=T1)
    sa.event.listen(core.engine.sync_engine, "before_cursor_execute", count)
    try:
        await feed(core, channel, [comment(f"m-{i}", T1, author=f"c-{i}") for i in range(1, 6)], now=T1)
        assert seen == []                                         # cached since the first batch
        await store_calendar(core, await team_of(core, channel), OFFICE)
        seen.clear()
        await feed(core, channel, [comment(f"m-{i}", T1, author=f"c-{i}") for i in range(6, 12)], now=T1)
        assert len(seen) == 1                                     # an edit drops the copy: read again once
    finally:
        sa.event.remove(core.engine.sync_engine, "before_cursor_execute", count)


async def test_the_sla_tick_raises_crossings_and_tells_the_inboxes(core, channel, monkeypatch) -> None:
    from socialcrm import scheduler

    await feed(core, channel, [comment("m-1", T1)], now=T1)
    monkeypatch.setattr(scheduler, "utcnow", lambda: T1 + minutes(50))
    async with core.hub.subscribe() as queue:
        await scheduler.sla_tick(core)
        published = [queue.get_nowait() for _ in range(queue.qsize())]
    assert sla.is_raised((await conv_row(core)).priority)
    assert {"type": "inbox", "team_id": await team_of(core, channel)} in published


async def test_editing_the_setup_recounts_the_open_deadlines(core, channel) -> None:
    wrote = oslo(2026, 11, 27, 16, 55)                        # Friday, five minutes before closing
    await feed(core, channel, [comment("m-1", wrote)], now=wrote)
    assert (await conv_row(core)).sla_due_at == wrote + minutes(60)          # 24/7 so far
    async with core.engine.begin() as conn:
        await sla_policies.save_calendar(conn, None, await team_of(core, channel), OFFICE, now=wrote + minutes(1))
    row = await conv_row(core)
    assert (row.sla_due_at, row.sla_risk_at) == (oslo(2026, 11, 30, 8, 55), oslo(2026, 11, 30, 8, 43))
    async with core.engine.begin() as conn:
        await sla_policies.save_targets(conn, None, channel, {True: StoredTargets(30), False: StoredTargets()},
                                        now=wrote + minutes(2))
    assert (await conv_row(core)).sla_due_at == oslo(2026, 11, 30, 8, 25)


async def test_the_configured_defaults_reach_every_setup_of_that_engine(core, channel) -> None:
    from socialcrm.config import Settings

    sla_policies.use_defaults(core.engine, sla_policies.Defaults.from_settings(
        Settings(sla_public_minutes=30, sla_private_minutes=120)))
    async with core.engine.connect() as conn:
        setup = await sla_policies.load_sla_setup(conn)
    assert setup.policy(channel, True).next_response_minutes == 30
    assert setup.policy(channel, False).first_response_minutes == 120
    await feed(core, channel, [comment("m-1", T1)], now=T1)
    await feed(core, channel, [echo("r-1", T1 + minutes(5))], now=T1 + minutes(5))
    await feed(core, channel, [comment("m-2", T1 + minutes(60))], now=T1 + minutes(60))
    assert (await conv_row(core)).sla_due_at == T1 + minutes(90)           # next response, from the setting
