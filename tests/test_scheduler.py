"""Polling: the cursor advances only with committed events; one run per channel; backoff."""

from __future__ import annotations

import asyncio

import httpx
import respx
import sqlalchemy as sa

from socialcrm import models, scheduler
from socialcrm.models import utcnow
from tests.support import PLATFORM, add_team_and_channel, running_core, sim_item

cursor_t, msg_t, chan_t = models.PollCursor.__table__, models.Message.__table__, models.Channel.__table__


def page(items, next_cursor):
    return httpx.Response(200, json={"account_id": "brand", "events": items, "next": next_cursor})


async def poll_channel_setup(core):
    channel_id = await add_team_and_channel(core)
    async with core.engine.begin() as conn:
        await conn.execute(chan_t.update().values(poll_enabled=True))
    core.channels.invalidate()
    return await core.channels.get(channel_id)


async def state(core):
    async with core.engine.connect() as conn:
        cur = (await conn.execute(sa.select(cursor_t))).first()
        n = (await conn.execute(sa.select(sa.func.count()).select_from(msg_t))).scalar_one()
    return cur, n


async def test_poll_stores_events_then_the_cursor(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        route = platform.get("/api/events").mock(side_effect=[
            page([sim_item("dm", "e1"), sim_item("post", "e2", author="c2")], "2"), page([], None)])
        channel = await poll_channel_setup(core)
        assert await core.poller.poll_channel(channel) == 2
        cur, n = await state(core)
        assert (cur.cursor, n) == ("2", 2)
        assert await core.poller.poll_channel(channel) == 0
        assert route.calls[1].request.url.params["after"] == "2"
        cur, _ = await state(core)
        assert cur.cursor == "2"                     # an empty page keeps the cursor


async def test_cursor_never_moves_past_an_uncommitted_item(database_url, monkeypatch):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        platform.get("/api/events").mock(return_value=page([sim_item("dm", "e1")], "1"))
        channel = await poll_channel_setup(core)
        real = scheduler.ingest_events

        async def crash(*args, **kwargs):
            await real(*args, **kwargs)
            raise RuntimeError("process died before commit")

        monkeypatch.setattr(scheduler, "ingest_events", crash)
        try:
            await core.poller.poll_channel(channel)
        except RuntimeError:
            pass
        cur, n = await state(core)
        assert cur is None and n == 0                # rolled back together: nothing lost, nothing skipped
        monkeypatch.setattr(scheduler, "ingest_events", real)
        await core.poller.poll_channel(channel)       # after a restart the same page comes again
        await core.poller.poll_channel(channel)
        cur, n = await state(core)
        assert (cur.cursor, n) == ("1", 1)


async def test_rate_limit_pushes_the_next_poll_back(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        platform.get("/api/events").mock(return_value=httpx.Response(429, headers={"Retry-After": "90"}))
        channel = await poll_channel_setup(core)
        before = utcnow()
        await core.poller.poll_channel(channel)
        cur, _ = await state(core)
        assert cur.cursor is None and cur.failures == 1
        assert (cur.next_poll_at - before).total_seconds() >= 89
        assert not await core.poller._is_due(channel)


async def test_rejected_token_marks_the_channel_for_reauthorisation(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        platform.get("/api/events").mock(return_value=httpx.Response(401, json={"error": "expired"}))
        channel = await poll_channel_setup(core)
        await core.poller.poll_channel(channel)
        async with core.engine.connect() as conn:
            assert (await conn.execute(sa.select(chan_t.c.status))).scalar_one() == "needs_reauth"


async def test_one_poll_per_channel_at_a_time(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        release = asyncio.Event()

        async def slow(request):
            await release.wait()
            return page([sim_item("dm", "e1")], "1")

        route = platform.get("/api/events").mock(side_effect=slow)
        channel = await poll_channel_setup(core)
        first = asyncio.create_task(core.poller.poll_channel(channel))
        await asyncio.sleep(0.05)
        assert await core.poller.poll_channel(channel) == 0    # refused while the first runs
        release.set()
        assert await first == 1
        assert route.call_count == 1


async def test_the_running_scheduler_delivers_a_queued_reply_and_polls(database_url):
    from socialcrm import replies
    from tests.support import add_agent

    async with running_core(database_url, poll_interval_seconds=0.2) as core, \
            respx.mock(base_url=PLATFORM) as platform:
        now_ms = int(utcnow().timestamp() * 1000)      # inside the 24 h reply window
        platform.get("/api/events").mock(return_value=page([sim_item("dm", "e1", ms=now_ms)], "1"))
        sent = platform.post("/api/replies").mock(return_value=httpx.Response(
            200, json={"id": "out-1", "created_at": 1_764_061_300_000}))
        await poll_channel_setup(core)
        agent = await add_agent(core, "kari", online=False)
        core.scheduler = scheduler.build_scheduler(core)
        core.scheduler.start()
        for _ in range(100):                              # the poll job runs at start
            if (await state(core))[1] == 1:
                break
            await asyncio.sleep(0.05)
        assert (await state(core))[1] == 1
        await replies.compose(core, 1, agent, "Hei!")     # wakes the outbox job at once
        for _ in range(100):
            if sent.call_count:
                break
            await asyncio.sleep(0.05)
        assert sent.call_count == 1
