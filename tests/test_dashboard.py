"""The dashboard's queries on both databases: a small fixed data set, a fixed clock, hand-computed figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cryptography.fernet import Fernet

from connectors.simulator import SimulatorConnector
from socialcrm import dashboard, models
from socialcrm.registry import Registry
from socialcrm.seed import Options, seed
from socialcrm.vault import Vault

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)      # a Wednesday
DAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)       # Tuesday 10:00 in Oslo
SINCE, UNTIL = datetime(2026, 11, 17, 23, tzinfo=UTC), datetime(2026, 11, 24, 23, tzinfo=UTC)   # Oslo days 18-24


def m(minutes: float) -> datetime:
    return DAY + timedelta(minutes=minutes)


class Data:
    """Team, channel, two agents and conversations written straight into the tables."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.n = 0

    async def base(self) -> None:
        c = self.conn
        self.team = (await c.execute(models.Team.__table__.insert().values(name="Care"))).inserted_primary_key[0]
        self.channel = (await c.execute(models.Channel.__table__.insert().values(
            connector="simulator", name="Sim", account_id="a", team_id=self.team, settings={}, secrets_encrypted="",
            status="active", status_reason="", auto_assign=True, csat_enabled=False, reply_signature="",
            poll_enabled=False, created_at=NOW))).inserted_primary_key[0]
        self.ann = await self.user("ann", online=True, capacity=3)
        self.bob = await self.user("bob", online=True, capacity=5)

    async def user(self, name: str, online: bool, capacity: int) -> int:
        return (await self.conn.execute(models.User.__table__.insert().values(
            username=name, display_name=name.title(), password_hash="x", role="agent", is_active=True,
            session_epoch=0, online=online, capacity=capacity, created_at=NOW))).inserted_primary_key[0]

    async def conversation_in(self, other: Data, events: list[tuple[str, datetime, int | None, dict]]) -> int:
        """A conversation in another Data's team and channel (a second transaction)."""
        self.team, self.channel, self.n = other.team, other.channel, 100
        return await self.conversation(True, events, status="resolved")

    async def conversation(self, public: bool, events: list[tuple[str, datetime, int | None, dict]], *,
                           created: datetime = DAY, status: str = "open", assignee: int | None = None,
                           due: datetime | None = None, risk: datetime | None = None) -> int:
        self.n += 1
        c = self.conn
        contact = (await c.execute(models.Contact.__table__.insert().values(name=f"C{self.n}", created_at=created))
                   ).inserted_primary_key[0]
        identity = (await c.execute(models.Identity.__table__.insert().values(
            channel_id=self.channel, contact_id=contact, original_contact_id=contact, external_id=f"x{self.n}",
            name=f"Customer {self.n}", handle="", avatar_url="", is_self=False, unreachable=False))).inserted_primary_key[0]
        conv = (await c.execute(models.Conversation.__table__.insert().values(
            channel_id=self.channel, team_id=self.team, contact_id=contact, identity_id=identity, thread_key=f"t{self.n}",
            thread_external_id=f"t{self.n}", public=public, status=status, priority=0, assignee_id=assignee,
            sla_due_at=due, sla_risk_at=risk, created_at=created, last_message_preview=""))).inserted_primary_key[0]
        await c.execute(models.ConversationEvent.__table__.insert(), [
            {"conversation_id": conv, "kind": k, "at": at, "user_id": u, "detail": d} for k, at, u, d in events])
        return conv


@pytest.fixture
async def data(engine) -> Data:
    async with engine.begin() as conn:
        d = Data(conn)
        await d.base()
        # A, public: first reply after 30 min (met), resolved after 60 (met).
        d.a = await d.conversation(True, [("created", m(0), None, {"public": True}), ("customer_message", m(0), None, {}),
                                          ("first_response", m(30), d.ann, {}), ("resolved", m(60), d.ann, {})],
                                   status="resolved", assignee=d.ann)
        # B, public: first reply after 90 min: breached (target 60).
        d.b = await d.conversation(True, [("created", m(0), None, {"public": True}), ("customer_message", m(0), None, {}),
                                          ("first_response", m(90), d.bob, {})], assignee=d.bob)
        # C, private: a bot acknowledgement that does not count, a person after 120 (met, 240),
        # the customer again at 180, the next reply at 210 (30 min).
        d.c = await d.conversation(False, [("created", m(0), None, {"public": False}), ("customer_message", m(0), None, {}),
                                           ("responded", m(0.1), None, {"automated": True}),
                                           ("first_response", m(120), d.ann, {}), ("customer_message", m(180), None, {}),
                                           ("responded", m(210), d.ann, {})], assignee=d.ann)
        # Outside the period: started two weeks earlier.
        d.old = await d.conversation(True, [("created", m(-20160), None, {"public": True}),
                                            ("customer_message", m(-20160), None, {})], created=m(-20160))
        # Live only: waiting, unassigned; one at risk, one past due.
        d.risky = await d.conversation(True, [("created", NOW - timedelta(minutes=50), None, {"public": True}),
                                              ("customer_message", NOW - timedelta(minutes=50), None, {})],
                                       created=NOW - timedelta(minutes=50), due=NOW + timedelta(minutes=10),
                                       risk=NOW - timedelta(minutes=2))
        d.late = await d.conversation(False, [("created", NOW - timedelta(hours=5), None, {"public": False}),
                                             ("customer_message", NOW - timedelta(hours=5), None, {})],
                                      created=NOW - timedelta(hours=5), due=NOW - timedelta(hours=1),
                                      risk=NOW - timedelta(hours=2))
    return d


async def _figures(engine) -> dashboard.Figures:
    async with engine.connect() as conn:
        return await dashboard.figures(conn, SINCE, UNTIL, NOW)


async def test_figures_match_hand_computed_values(engine, data: Data) -> None:
    fig = await _figures(engine)
    ids = {s.id for s in fig.started}
    assert data.old not in ids and {data.a, data.b, data.c} <= ids
    abc = dashboard.ids_behind(fig, "all", "all", "first_response")
    assert abc == [data.a, data.b, data.c]          # the three answered first responses
    public = fig.tables["visibility"]["public"]
    private = fig.tables["visibility"]["private"]
    # median of 30 and 90; B breached twice: its first reply, and its resolution (open 29 h, target 24 h)
    assert (public.first_response_median, public.breached) == (60, 2)
    assert private.first_response_median == 120                                  # the bot's reply did not count
    assert private.next_response_median == 30
    ann = fig.tables["agent"][data.ann]
    assert (ann.first_response_median, ann.next_response_median, ann.resolution_median) == (75, 30, 60)
    assert ann.attainment_pct == 100.0 and fig.tables["agent"][data.bob].attainment_pct == 0.0


async def test_totals_with_p90_and_attainment(engine, data: Data) -> None:
    fig = await _figures(engine)
    total = fig.total
    assert total is not None
    # answered first responses 30, 90, 120: median 90, nearest-rank p90 120
    assert (total.first_response_median, total.first_response_p90) == (90, 120)
    # verdicts: A first and resolution (met), B first and resolution (breached), C first and next (met)
    assert (total.met, total.breached) == (4, 2)
    assert total.attainment_pct == pytest.approx(100 * 4 / 6)


async def test_drill_down_ids_are_the_ones_behind_each_figure(engine, data: Data) -> None:
    fig = await _figures(engine)
    assert dashboard.ids_behind(fig, "visibility", "public", "first_response") == [data.a, data.b]
    assert dashboard.ids_behind(fig, "visibility", "public", "breached") == [data.b]
    assert dashboard.ids_behind(fig, "visibility", "private", "next_response") == [data.c]
    assert dashboard.ids_behind(fig, "agent", str(data.ann), "resolution") == [data.a]
    per_channel = fig.tables["channel"][data.channel]
    assert len(dashboard.ids_behind(fig, "channel", str(data.channel), "conversations")) == per_channel.conversations
    day = DAY.astimezone(dashboard.ZONE).date().isoformat()
    assert set(dashboard.ids_behind(fig, "day", day, "attainment")) == {data.a, data.b, data.c}
    assert dashboard.ids_behind(fig, "hour", f"{data.channel}-10", "conversations") == [data.a, data.b, data.c]
    with pytest.raises(KeyError):
        dashboard.ids_behind(fig, "visibility", "nobody", "conversations")
    with pytest.raises(ValueError):
        dashboard.ids_behind(fig, "all", "all", "everything")


async def test_volume_counts_conversations_per_local_hour(engine, data: Data) -> None:
    fig = await _figures(engine)
    assert fig.volume[(data.channel, 10)] == 3      # 09:00 UTC is 10:00 in Oslo in November


async def test_live_counts_and_agents_load(engine, data: Data) -> None:
    async with engine.connect() as conn:
        live = await dashboard.live(conn, NOW)
    # open: B, C, old, risky, late (A is resolved)
    assert live.open == 5
    assert live.open_by_channel == {(data.channel, True): 3, (data.channel, False): 2}
    assert (live.unassigned, live.breaching, live.breached) == (3, 1, 1)
    assert {(a.name, a.load, a.capacity) for a in live.agents} == {("Ann", 1, 3), ("Bob", 1, 5)}
    async with engine.connect() as conn:
        total, rows = await dashboard.rows_for_live(conn, dashboard.live_where("breaching", "", NOW), 1)
        assert (total, [r.id for r in rows]) == (1, [data.risky])
        total, rows = await dashboard.rows_for_live(conn, dashboard.live_where("open", f"{data.channel}-private", NOW), 1)
        assert [r.id for r in rows] == [data.c, data.late]


async def test_a_changed_calendar_is_computed_afresh_and_recomputes_history(engine, data: Data) -> None:
    cache = dashboard.FigureCache(engine, ttl=30, clock=lambda: 0.0)
    before = await cache.get(SINCE, UNTIL, NOW)
    assert await cache.get(SINCE, UNTIL, NOW) is before          # served from the cache
    async with engine.begin() as conn:   # B's team now opens at 11:30 Oslo, when B was answered
        await conn.execute(models.TeamCalendar.__table__.insert().values(
            team_id=data.team, tz="Europe/Oslo", always_open=False, hours={str(d): [["11:30", "17:00"]] for d in range(5)},
            holidays=[], at_risk_fraction=0.8, updated_at=NOW))
    after = await cache.get(SINCE, UNTIL, NOW)                  # at once, not after the TTL
    was, now = before.tables["visibility"]["public"], after.tables["visibility"]["public"]
    assert (was.breached, was.first_response_attainment_pct) == (2, 50.0)
    # B's first reply at 11:30 is now on time; its resolution has used 9 business hours of 24
    assert (now.breached, now.first_response_attainment_pct) == (0, 100.0)


async def test_a_stale_period_is_answered_at_once_and_computed_again_behind(engine, data: Data) -> None:
    ticks = [0.0]
    cache = dashboard.FigureCache(engine, ttl=30, max_age=300, clock=lambda: ticks[0])
    first = await cache.get(SINCE, UNTIL, NOW)
    ticks[0] = 60.0                        # past the TTL but nothing new: still the same answer
    assert await cache.get(SINCE, UNTIL, NOW) is first
    await cache.settled()
    assert await cache.get(SINCE, UNTIL, NOW) is first, "nothing was recomputed"
    async with engine.begin() as conn:
        await conn.execute(models.ConversationEvent.__table__.insert().values(
            conversation_id=data.b, kind="resolved", at=m(100), user_id=data.bob, detail={}))
    assert await cache.get(SINCE, UNTIL, NOW) is first     # stale, answered at once ...
    await cache.settled()
    fresh = await cache.get(SINCE, UNTIL, NOW)             # ... and computed again meanwhile
    assert fresh is not first and fresh.tables["agent"][data.bob].resolution_median == 100
    ticks[0] = 1000.0                                       # past max_age: computed before answering
    async with engine.begin() as conn:
        await conn.execute(models.ConversationEvent.__table__.insert().values(
            conversation_id=data.c, kind="resolved", at=m(240), user_id=data.ann, detail={}))
    latest = await cache.get(SINCE, UNTIL, NOW)
    assert latest.tables["agent"][data.ann].resolution_median == 150    # A 60 and C 240: median 150


async def test_concurrent_requests_share_one_computation(engine, data: Data, monkeypatch) -> None:
    import asyncio

    calls = []
    real = dashboard.compute
    monkeypatch.setattr(dashboard, "compute", lambda *a: calls.append(1) or real(*a))
    cache = dashboard.FigureCache(engine)
    one, two, three = await asyncio.gather(*(cache.get(SINCE, UNTIL, NOW) for _ in range(3)))
    assert one is two is three and len(calls) == 1


async def test_seed_writes_consistent_rows_twice_without_clashing(engine) -> None:
    registry, vault = Registry([SimulatorConnector]), Vault([Fernet.generate_key()])
    options = Options(conversations=120, days=10, agents=4, seed=1, channels=2)
    done = await seed(engine, registry, vault, options, now=NOW)
    again = await seed(engine, registry, vault, Options(conversations=30, days=3, agents=2, seed=2, channels=1), now=NOW)
    with pytest.raises(ValueError):
        await seed(engine, registry, vault, Options(channels=0), now=NOW)
    assert (done.conversations, again.conversations) == (120, 30)
    conv, ev = models.Conversation.__table__, models.ConversationEvent.__table__
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(conv)) == 150
        assert await conn.scalar(sa.select(sa.func.count()).select_from(ev)) == done.events + again.events
        waiting = (await conn.execute(sa.select(conv.c.sla_due_at).where(conv.c.status == "open"))).all()
        assert any(r.sla_due_at is not None for r in waiting)      # still waiting: a deadline from the log
        assert await conn.scalar(sa.select(sa.func.max(ev.c.at))) <= NOW
        fig = await dashboard.figures(conn, NOW - timedelta(days=11), NOW + timedelta(minutes=1), NOW)
        live = await dashboard.live(conn, NOW)
    assert live.agents and all(a.load <= a.capacity for a in live.agents), "open work beyond capacity is queued"
    assert fig.total is not None and fig.total.conversations == 150
    async with engine.begin() as conn:   # the id sequences moved past the explicit ids (PostgreSQL)
        await conn.execute(models.Contact.__table__.insert().values(name="after", created_at=NOW))


async def test_a_refresh_recomputes_only_running_or_changed_timelines(engine, data: Data, monkeypatch) -> None:
    async with engine.begin() as conn:      # D: finished at NOW, but a reopen is dated 10 minutes later
        d = await Data(conn).conversation_in(data, [
            ("created", m(0), None, {"public": True}), ("customer_message", m(0), None, {}),
            ("first_response", m(10), data.ann, {}), ("resolved", m(20), data.ann, {}),
            ("reopened", NOW + timedelta(minutes=10), None, {})])
    async with engine.connect() as conn:
        first = await dashboard.figures(conn, SINCE, UNTIL, NOW)
    async with engine.begin() as conn:          # C is resolved: its log grew
        await conn.execute(models.ConversationEvent.__table__.insert().values(
            conversation_id=data.c, kind="resolved", at=m(240), user_id=data.ann, detail={}))
    computed = []
    real = dashboard.timeline
    monkeypatch.setattr(dashboard, "timeline", lambda events, policy, now, **kw: computed.append(
        kw["conversation_id"]) or real(events, policy, now, **kw))
    async with engine.connect() as conn:
        setup = await dashboard.load_sla_setup(conn)
        started, logs = await dashboard.load_period(conn, SINCE, UNTIL)
    later = NOW + timedelta(hours=1)
    again = dashboard.compute(started, logs, setup, later, SINCE, UNTIL, previous=first)
    # A is finished and unchanged: lent; B still has a running resolution clock; C changed;
    # D's reopen was in the future for the first computation
    assert sorted(computed) == sorted([data.b, data.c, d])
    assert again.by_id[data.a] is first.by_id[data.a]
    scratch = dashboard.compute(started, logs, setup, later, SINCE, UNTIL)
    assert again.tables == scratch.tables and again.total == scratch.total and again.per_day == scratch.per_day
