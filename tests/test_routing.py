"""Router: public first, then the earliest deadline; capacity; offline hand-back; reasons."""

from __future__ import annotations

import sqlalchemy as sa

from socialcrm import ingest, models, routing, sla
from socialcrm.conversations import resolve, set_presence
from tests.support import T0, add_agent, add_team_and_channel, ev, minutes, running_core

conv_t, assign_t = models.Conversation.__table__, models.Assignment.__table__


async def ingest_events(core, channel_id, events):
    info = (await core.channels.get(channel_id)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, events, now=T0 + minutes(60))


async def assigned_order(core) -> list[str]:
    async with core.engine.connect() as conn:
        rows = (await conn.execute(sa.select(conv_t.c.thread_key).join(assign_t, assign_t.c.conversation_id == conv_t.c.id)
                                   .where(assign_t.c.user_id.is_not(None)).order_by(assign_t.c.id))).all()
    return [r.thread_key for r in rows]


async def route(core, now=None):
    async with core.engine.begin() as conn:
        return await routing.route(conn, now or T0 + minutes(60))


def test_priority_puts_any_public_post_above_any_private_message():
    late_public = sla.priority(True, T0 + minutes(600))
    overdue_private = sla.priority(False, T0 - minutes(600))
    assert late_public > overdue_private
    assert sla.priority(False, T0) > sla.priority(False, T0 + minutes(1))        # earlier deadline first
    assert sla.priority(True, T0, followers=50_000) > sla.priority(True, T0)       # reach raises urgency
    assert sla.priority(False, T0 + minutes(10_000)) > sla.priority(True, None)    # waiting beats answered


async def test_public_before_private_then_oldest_first(database_url):
    async with running_core(database_url) as core:
        ch = await add_team_and_channel(core)
        await ingest_events(core, ch, [
            ev("message", "dm-old", "dm-old", author="a", at=T0),
            ev("message", "dm-new", "dm-new", author="b", at=T0 + minutes(10)),
            ev("comment", "c-new", "post", author="c", public=True, at=T0 + minutes(20)),
            ev("comment", "c-old", "post", author="d", public=True, at=T0 + minutes(5)),
        ])
        await add_agent(core, "kari", capacity=10)
        assert await assigned_order(core) == ["post#d", "post#c", "dm-old", "dm-new"]


async def test_capacity_is_respected_and_freed_capacity_takes_the_next(database_url):
    async with running_core(database_url) as core:
        ch = await add_team_and_channel(core)
        await ingest_events(core, ch, [ev("message", f"m{i}", f"dm{i}", author=f"c{i}", at=T0 + minutes(i))
                                       for i in range(4)])
        kari = await add_agent(core, "kari", capacity=2)
        async with core.engine.connect() as conn:
            mine = (await conn.execute(sa.select(conv_t.c.id, conv_t.c.thread_key).where(conv_t.c.assignee_id == kari)
                                       .order_by(conv_t.c.id))).all()
        assert [m.thread_key for m in mine] == ["dm0", "dm1"]
        await resolve(core, mine[0].id, kari)
        async with core.engine.connect() as conn:
            open_mine = (await conn.execute(sa.select(conv_t.c.thread_key).where(
                conv_t.c.assignee_id == kari, conv_t.c.status == "open").order_by(conv_t.c.id))).scalars().all()
        assert open_mine == ["dm1", "dm2"]


async def test_least_loaded_agent_gets_the_next_conversation(database_url):
    async with running_core(database_url) as core:
        ch = await add_team_and_channel(core)
        kari = await add_agent(core, "kari")
        await ingest_events(core, ch, [ev("message", "m1", "dm1", author="c1")])
        await route(core)
        ola = await add_agent(core, "ola")
        await ingest_events(core, ch, [ev("message", "m2", "dm2", author="c2", at=T0 + minutes(1))])
        await route(core)
        async with core.engine.connect() as conn:
            owners = dict((await conn.execute(sa.select(conv_t.c.thread_key, conv_t.c.assignee_id))).all())
        assert owners == {"dm1": kari, "dm2": ola}


async def test_agents_only_get_their_teams_work_and_offline_agents_none(database_url):
    async with running_core(database_url) as core:
        ch = await add_team_and_channel(core, team="Care")
        await add_agent(core, "other", team="Sales")
        await add_agent(core, "sleepy", team="Care", online=False)
        await ingest_events(core, ch, [ev("message", "m1", "dm1")])
        assert await route(core) == []


async def test_going_offline_hands_waiting_work_to_someone_online(database_url):
    async with running_core(database_url) as core:
        ch = await add_team_and_channel(core)
        kari = await add_agent(core, "kari")
        await ingest_events(core, ch, [ev("comment", "c1", "post", public=True)])
        await route(core)
        ola = await add_agent(core, "ola")
        await set_presence(core, kari, False)
        async with core.engine.connect() as conn:
            conv = (await conn.execute(sa.select(conv_t))).one()
            reasons = (await conn.execute(sa.select(assign_t.c.user_id, assign_t.c.reason).order_by(assign_t.c.id))).all()
        assert conv.assignee_id == ola
        assert [r.user_id for r in reasons] == [kari, None, ola]
        assert reasons[1].reason == "assignee went offline"


async def test_every_assignment_says_why(database_url):
    async with running_core(database_url) as core:
        ch = await add_team_and_channel(core)
        await ingest_events(core, ch, [ev("comment", "c1", "post", public=True, at=T0)])
        await add_agent(core, "kari", capacity=5)
        async with core.engine.connect() as conn:
            reason = (await conn.execute(sa.select(conv_t.c.assignment_reason))).scalar_one()
        # set_presence routes with the real clock; the deadline words depend on it, the rest does not.
        assert reason.startswith("public post, ") and reason.endswith(", you had 0 of 5 open")
        assert routing.explain(True, T0 + minutes(60), routing.Agent(1, "k", 5, 2, {1}, None), T0 + minutes(48)) == \
            "public post, 12 min to SLA, you had 2 of 5 open"


async def test_two_routers_at_once_never_assign_twice(database_url):
    import asyncio

    async with running_core(database_url) as core:
        ch = await add_team_and_channel(core)
        await ingest_events(core, ch, [ev("message", f"m{i}", f"dm{i}", author=f"c{i}") for i in range(6)])
        await add_agent(core, "kari", capacity=3, online=False)
        async with core.engine.begin() as conn:
            await conn.execute(models.User.__table__.update().values(online=True))
        await asyncio.gather(route(core), route(core), return_exceptions=True)
        async with core.engine.connect() as conn:
            n_assigned = (await conn.execute(sa.select(sa.func.count()).select_from(assign_t))).scalar_one()
            n_owned = (await conn.execute(sa.select(sa.func.count()).select_from(conv_t)
                                          .where(conv_t.c.assignee_id.is_not(None)))).scalar_one()
        # Each assignment record is a distinct conversation: none was assigned twice.
        # (Capacity under concurrent routers in several processes is the scale-out work's.)
        assert n_assigned == n_owned
        assert n_owned >= 3
