"""Routers in several processes at once: no agent over capacity, no conversation assigned twice.

Two engines (two "processes"), two tasks on each, on PostgreSQL; every task ingests new
conversations and routes in the same transaction, as webhook ingest does, so each router sees
conversations the others cannot see yet: the case where unlocked load counts overshoot.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import sqlalchemy as sa

from socialcrm import models, routing
from socialcrm.db import make_engine
from socialcrm.receipts import ingest_events
from tests.support import add_agent, add_team_and_channel, ev, running_core

conv_t, user_t, assignment_t = models.Conversation.__table__, models.User.__table__, models.Assignment.__table__
CAPACITY, AGENTS, CONVERSATIONS = 5, 3, 50


async def assigned_counts(engine) -> tuple[Counter, Counter]:
    """(open conversations per assignee, assignment records per conversation)."""
    async with engine.connect() as conn:
        per_agent = Counter(dict((await conn.execute(
            sa.select(conv_t.c.assignee_id, sa.func.count()).where(conv_t.c.assignee_id.is_not(None))
            .group_by(conv_t.c.assignee_id))).all()))
        per_conv = Counter(dict((await conn.execute(
            sa.select(assignment_t.c.conversation_id, sa.func.count()).where(assignment_t.c.user_id.is_not(None))
            .group_by(assignment_t.c.conversation_id))).all()))
    return per_agent, per_conv


async def test_concurrent_ingest_and_routing_never_exceed_capacity(pg_url):  # noqa: F811
    async with running_core(pg_url) as core:
        channel = await core.channels.get(await add_team_and_channel(core))
        agents = [await add_agent(core, f"agent{i}", capacity=CAPACITY) for i in range(AGENTS)]
        engines = [make_engine(pg_url), make_engine(pg_url)]
        todo = list(range(CONVERSATIONS))

        async def router(engine) -> None:
            while todo:
                i = todo.pop()
                async with engine.begin() as conn:
                    await ingest_events(conn, channel, [ev("message", f"m{i}", f"cust-{i}", author=f"cust-{i}")])

        try:
            await asyncio.gather(*(router(engines[n % 2]) for n in range(4)))
            per_agent, per_conv = await assigned_counts(core.engine)
            assert set(per_agent) <= set(agents)
            assert max(per_agent.values()) <= CAPACITY, per_agent
            assert sum(per_agent.values()) == CAPACITY * AGENTS          # and every free place was used
            assert set(per_conv.values()) == {1}

            # More room: four plain routers at once hand out the rest, still each conversation once.
            async with core.engine.begin() as conn:
                await conn.execute(user_t.update().values(capacity=CONVERSATIONS))

            async def route_once(engine) -> list[routing.Assigned]:
                async with engine.begin() as conn:
                    return await routing.route(conn)

            made = await asyncio.gather(*(route_once(engines[n % 2]) for n in range(4)))
            ids = [a.conversation_id for batch in made for a in batch]
            assert len(ids) == len(set(ids)) == CONVERSATIONS - CAPACITY * AGENTS
            per_agent, per_conv = await assigned_counts(core.engine)
            assert sum(per_agent.values()) == CONVERSATIONS and set(per_conv.values()) == {1}
        finally:
            for engine in engines:
                await engine.dispose()


async def test_routing_waits_for_no_row_another_transaction_holds(pg_url):  # noqa: F811
    """A router holding the routing lock skips a conversation that another open transaction is
    changing (that one routes it itself), instead of waiting for it: no deadlock."""
    async with running_core(pg_url) as core:
        channel = await core.channels.get(await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest_events(conn, channel, [ev("message", "m1", "c1", author="c1"),
                                                ev("message", "m2", "c2", author="c2")])
        await add_agent(core, "kari", capacity=5, online=False)
        async with core.engine.begin() as conn:
            await conn.execute(user_t.update().values(online=True, online_since=models.utcnow()))
        other = make_engine(pg_url)
        try:
            async with other.begin() as holder:
                first = await holder.scalar(sa.select(sa.func.min(conv_t.c.id)))
                await holder.execute(conv_t.update().where(conv_t.c.id == first).values(last_message_preview="busy"))
                async with core.engine.begin() as conn:
                    made = await asyncio.wait_for(routing.route(conn), 5)
            assert [a.conversation_id for a in made] == [first + 1]
        finally:
            await other.dispose()
