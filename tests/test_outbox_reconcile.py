"""A reply left "sending" by a dispatcher that died: who re-sends it, when, with which key."""

from __future__ import annotations

from datetime import timedelta

import httpx
import respx
import sqlalchemy as sa

from socialcrm import models, replies
from socialcrm.models import utcnow
from socialcrm.coordination import lock_key
from socialcrm.outbox import DISPATCH_LOCK, LEASE, Dispatcher
from tests.support import PLATFORM, add_agent, add_team_and_channel, ev, running_core

msg_t, out_t = models.Message.__table__, models.OutboxEntry.__table__
OK = httpx.Response(200, json={"id": "sim-out-1", "created_at": 1_764_061_300_000})


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now


async def queued_reply(core) -> int:
    from socialcrm import ingest

    channel_id = await add_team_and_channel(core)
    info = (await core.channels.get(channel_id)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("message", "in-1", "cust-1", at=utcnow())])
        conv_id = (await conn.execute(sa.select(models.Conversation.__table__.c.id))).scalar_one()
    return await replies.compose(core, conv_id, await add_agent(core, "kari", online=False), "Hei")


async def entry_status(core) -> str:
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(out_t.c.status))).scalar_one()


async def test_an_entry_left_mid_send_is_resent_at_once_by_the_next_holder_on_postgres(database_url):
    """PostgreSQL: sends happen only under the channel's lock, so the next process to take it knows
    the "sending" entry is orphaned and re-sends it at once, with the same idempotency key. SQLite
    (one process) has no such lock: the lease running out is what re-sends it."""
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        route = platform.post("/api/replies").mock(return_value=OK)
        message_id = await queued_reply(core)
        clock = Clock()
        dead = Dispatcher(core.engine, core.channels, core.hub, clock=clock)
        assert len(await dead.claim()) == 1                       # claimed, then the process is killed
        survivor = Dispatcher(core.engine, core.channels, core.hub, clock=clock)
        await survivor.run_once()
        if core.engine.dialect.name == "sqlite":
            assert route.call_count == 0 and await entry_status(core) == "sending"
            clock.now += LEASE + timedelta(seconds=1)
            await survivor.run_once()
        assert route.call_count == 1
        assert route.calls[0].request.headers["Idempotency-Key"] == f"socialcrm-outbox-{message_id}"
        assert await entry_status(core) == "sent"


async def test_an_entry_whose_sender_still_holds_the_channel_is_left_alone(database_url):
    if "sqlite" in database_url:
        return  # the lock exists only on PostgreSQL; on SQLite the lease alone decides (above)
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        route = platform.post("/api/replies").mock(return_value=OK)
        await queued_reply(core)
        busy = Dispatcher(core.engine, core.channels, core.hub)
        assert len(await busy.claim()) == 1
        async with core.engine.connect() as holder, holder.begin():   # the live sender's round
            assert await holder.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(*lock_key(DISPATCH_LOCK, 1))))
            other = Dispatcher(core.engine, core.channels, core.hub)
            assert await other.run_once() == 0
            assert route.call_count == 0 and await entry_status(core) == "sending"
        await other.run_once()                                        # the holder is gone: reconciled
        assert route.call_count == 1 and await entry_status(core) == "sent"
