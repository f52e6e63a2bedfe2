"""Several processes on one PostgreSQL: polls, periodic jobs and live events are coordinated.

Two Core instances, each with its own engine and connections, stand for two processes.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import timedelta

import httpx
import respx
import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from socialcrm import coordination, models, scheduler
from socialcrm.db import make_engine
from socialcrm.live import APP_NAME, Hub, PgHub
from tests.support import PLATFORM, T0, add_team_and_channel, running_core, sim_item

chan_t, msg_t, cursor_t = models.Channel.__table__, models.Message.__table__, models.PollCursor.__table__


async def two_cores(stack: AsyncExitStack, url: str) -> tuple:
    return (await stack.enter_async_context(running_core(url)),
            await stack.enter_async_context(running_core(url)))


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- polls -----------------------------------------------------------------------------------

async def test_a_due_channel_is_polled_by_one_process_and_the_other_skips(pg_url):
    async with AsyncExitStack() as stack:
        a, b = await two_cores(stack, pg_url)
        platform = stack.enter_context(respx.mock(base_url=PLATFORM))

        async def slow_page(request):
            await asyncio.sleep(0.3)          # both processes are inside poll_due meanwhile
            return httpx.Response(200, json={"account_id": "brand", "events": [sim_item("dm", "e1")], "next": "1"})

        route = platform.get("/api/events").mock(side_effect=slow_page)
        channel_id = await add_team_and_channel(a)
        async with a.engine.begin() as conn:
            await conn.execute(chan_t.update().values(poll_enabled=True))
        await asyncio.gather(a.poller.poll_due(), b.poller.poll_due(), b.poller.poll_due())
        assert route.call_count == 1
        async with a.engine.connect() as conn:
            assert (await conn.scalar(sa.select(cursor_t.c.cursor).where(cursor_t.c.channel_id == channel_id))) == "1"
            assert await conn.scalar(sa.select(sa.func.count()).select_from(msg_t)) == 1
        # Right after, the other process finds the channel not due: nobody polls it again.
        await b.poller.poll_due()
        assert route.call_count == 1


async def test_a_channel_locked_by_another_process_is_not_polled(pg_url):
    async with AsyncExitStack() as stack:
        a, b = await two_cores(stack, pg_url)
        platform = stack.enter_context(respx.mock(base_url=PLATFORM))
        route = platform.get("/api/events").mock(return_value=httpx.Response(
            200, json={"account_id": "brand", "events": [], "next": None}))
        channel = await b.channels.get(await add_team_and_channel(a))
        async with coordination.exclusive(a.engine, "poll", channel.id) as held:
            assert held
            assert await b.poller.poll_channel(channel) == 0
            assert route.call_count == 0
        await b.poller.poll_channel(channel)           # released: the other process may poll now
        assert route.call_count == 1


# -- periodic jobs ---------------------------------------------------------------------------

async def test_a_period_is_claimed_once_then_again_a_period_later(database_url):
    engine = make_engine(database_url)
    try:
        every = timedelta(seconds=30)
        assert await coordination.claim_period(engine, "sla", every, T0)
        assert not await coordination.claim_period(engine, "sla", every, T0 + timedelta(seconds=10))
        assert await coordination.claim_period(engine, "other-job", every, T0 + timedelta(seconds=10))
        assert await coordination.claim_period(engine, "sla", every, T0 + every)
        async with engine.connect() as conn:
            row = (await conn.execute(sa.select(models.JobRun.__table__)
                                      .where(models.JobRun.__table__.c.name == "sla"))).one()
        assert row.last_run_at == T0 + every and row.run_by == coordination.PROCESS
    finally:
        await engine.dispose()


async def test_two_processes_claiming_at_once_run_a_job_once(pg_url):
    engines = [make_engine(pg_url) for _ in range(2)]
    try:
        every = timedelta(minutes=1)
        claims = await asyncio.gather(*(coordination.claim_period(e, "sweep", every, T0 + timedelta(milliseconds=i))
                                        for i in range(10) for e in engines))
        assert claims.count(True) == 1
    finally:
        for e in engines:
            await e.dispose()


async def test_scheduled_jobs_run_once_per_period_across_processes_except_the_shared_ones(pg_url):
    calls: list[str] = []

    async def job(who: str) -> None:
        calls.append(who)

    async with AsyncExitStack() as stack:
        cores = await two_cores(stack, pg_url)
        jobs = []
        for name, core in zip("ab", cores):
            sched = AsyncIOScheduler()
            sched.add_job(job, "interval", seconds=30, id="report", args=[name])
            sched.add_job(job, "interval", seconds=30, id="outbox", args=[name])
            scheduler.coordinate_periodic_jobs(sched, core)
            jobs.append({j.id: j for j in sched.get_jobs()})
        await asyncio.gather(*(j["report"].func(*j["report"].args) for j in jobs))
        assert len(calls) == 1                           # one of the two processes ran "report"
        await asyncio.gather(*(j["outbox"].func(*j["outbox"].args) for j in jobs))
        assert sorted(calls[1:]) == ["a", "b"]           # the outbox runs everywhere (SKIP LOCKED)


async def test_build_scheduler_coordinates_every_interval_job_but_outbox_and_poll(database_url):
    async with running_core(database_url) as core:
        sched = scheduler.build_scheduler(core)
        ids = {job.id: getattr(job.func, "__wrapped__", None) is not None for job in sched.get_jobs()}
    assert {"outbox", "poll", "sla", "receipts-sweep"} <= set(ids)
    assert ids == {name: name not in scheduler.EVERY_PROCESS for name in ids}


# -- live events -----------------------------------------------------------------------------

async def test_an_event_published_in_one_process_reaches_the_others_once(pg_url):
    async with AsyncExitStack() as stack:
        a, b = await two_cores(stack, pg_url)
        assert isinstance(a.hub, PgHub) and a.hub.connected.is_set() and b.hub.connected.is_set()
        qa = await stack.enter_async_context(a.hub.subscribe())
        qb = await stack.enter_async_context(b.hub.subscribe())
        a.hub.publish({"type": "conversation", "conversation_id": 7, "team_id": 1})
        assert await asyncio.wait_for(qb.get(), 5) == {"type": "conversation", "conversation_id": 7, "team_id": 1}
        assert qa.get_nowait()["conversation_id"] == 7       # locally, at once
        b.hub.publish({"type": "inbox", "team_id": 1})
        assert await asyncio.wait_for(qa.get(), 5) == {"type": "inbox", "team_id": 1}
        assert (await asyncio.wait_for(qb.get(), 5))["type"] == "inbox"
        await asyncio.sleep(0.3)                               # own notifications came back meanwhile
        assert qa.empty() and qb.empty()                       # ... and were not delivered twice


async def test_many_events_cross_in_order_and_an_oversized_one_stays_local(pg_url):
    async with AsyncExitStack() as stack:
        a, b = await two_cores(stack, pg_url)
        qb = await stack.enter_async_context(b.hub.subscribe())
        for i in range(200):
            a.hub.publish({"type": "conversation", "conversation_id": i, "team_id": 1})
        got = [(await asyncio.wait_for(qb.get(), 5))["conversation_id"] for _ in range(200)]
        assert got == list(range(200))
        qa = await stack.enter_async_context(a.hub.subscribe())
        a.hub.publish({"type": "inbox", "team_id": 1, "note": "x" * 9000})
        assert qa.get_nowait()["type"] == "inbox"
        await asyncio.sleep(0.3)
        assert qb.empty()


async def test_sqlite_uses_the_in_process_hub(tmp_path):
    from socialcrm.live import hub_for

    assert type(hub_for(f"sqlite+aiosqlite:///{tmp_path}/x.db")) is Hub
    assert isinstance(hub_for("postgresql+asyncpg://u@127.0.0.1/db"), PgHub)


async def test_the_listener_comes_back_after_its_connection_is_killed(pg_url, caplog):
    caplog.set_level(logging.INFO, logger="socialcrm.live")
    async with AsyncExitStack() as stack:
        a, b = await two_cores(stack, pg_url)
        qb = await stack.enter_async_context(b.hub.subscribe())
        async with a.engine.connect() as conn:     # kill b's listening backend, as a restart would
            killed = await conn.scalar(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name"), {"name": APP_NAME})
        assert killed == 2                          # one per process
        await wait_for(lambda: a.hub.connections == b.hub.connections == 2, 10)   # both came back
        a.hub.publish({"type": "inbox", "team_id": 3})
        assert await asyncio.wait_for(qb.get(), 5) == {"type": "inbox", "team_id": 3}
        assert "live events across processes lost" in caplog.text
        assert "live events across processes recovered" in caplog.text


# -- acknowledgements wait for ingest (PostgreSQL's separate store and ingest) -----------------

async def test_acknowledgements_wait_while_the_ingest_backlog_is_full():
    from socialcrm.receipts import Backlog

    backlog = Backlog()
    backlog.rate = 1000.0                                  # deliveries/s
    room = backlog.room()
    assert room == int(1000 * Backlog.BACKLOG_SECONDS) > Backlog.MIN_ROOM
    queued = room + 50
    waiting = asyncio.create_task(backlog.wait_for_room(lambda: queued))
    await asyncio.sleep(0.05)
    assert not waiting.done()                              # more queued than the room: the store loop waits
    queued = 0
    backlog.started(room + 50)                             # the ingest loop took the queue
    await asyncio.wait_for(waiting, 1)
    await asyncio.wait_for(backlog.wait_for_room(lambda: 10), 1)   # room: no wait at all
    backlog.finished(room + 50)
    assert backlog.room() >= Backlog.MIN_ROOM
