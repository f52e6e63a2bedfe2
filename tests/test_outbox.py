"""Replies and the outbox: capability checks, retries, rate limits, failures, at-least-once."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx
import sqlalchemy as sa

from socialcrm import ingest, models, replies
from socialcrm.models import utcnow
from tests.support import PLATFORM, add_agent, add_team_and_channel, ev, running_core

msg_t, out_t, chan_t = models.Message.__table__, models.OutboxEntry.__table__, models.Channel.__table__
conv_t = models.Conversation.__table__
OK = httpx.Response(200, json={"id": "sim-out-1", "created_at": 1_764_061_300_000})


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def conversation(core, public=False, text="Hvor er pakken?", at=None) -> tuple[int, int]:
    """A fresh customer conversation and an agent; returns (conversation id, agent id)."""
    channel_id = await add_team_and_channel(core)
    info = (await core.channels.get(channel_id)).info
    event = ev("comment" if public else "message", "in-1", "post-1" if public else "cust-1", public=public,
               text=text, at=at or utcnow())
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [event])
        conv_id = (await conn.execute(sa.select(conv_t.c.id))).scalar_one()
    return conv_id, await add_agent(core, "kari", online=False)


async def message(core, message_id):
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(msg_t).where(msg_t.c.id == message_id))).one()


async def test_500_500_200_is_delivered_once(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        route = platform.post("/api/replies").mock(side_effect=[httpx.Response(500), httpx.Response(502), OK])
        conv_id, agent = await conversation(core)
        message_id = await replies.compose(core, conv_id, agent, "Vi sjekker det nå!")
        clock = core.dispatcher.clock = Clock()
        for _ in range(3):
            await core.dispatcher.run_once()
            clock.advance(3600)
        assert route.call_count == 3
        sent = await message(core, message_id)
        assert (sent.status, sent.external_id) == ("sent", "sim-out-1")
        await core.dispatcher.run_once()
        assert route.call_count == 3                      # nothing is sent again once it is sent


async def test_not_sent_is_never_shown_as_sent(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        platform.post("/api/replies").mock(return_value=httpx.Response(503))
        conv_id, agent = await conversation(core)
        message_id = await replies.compose(core, conv_id, agent, "Hei")
        await core.dispatcher.run_once()
        queued = await message(core, message_id)
        assert queued.status == "queued" and queued.external_id is None


async def test_429_retry_after_is_honoured_for_the_whole_channel(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        route = platform.post("/api/replies").mock(side_effect=[
            httpx.Response(429, headers={"Retry-After": "120"}), OK,
            httpx.Response(200, json={"id": "sim-out-2", "created_at": 1_764_061_300_000})])
        conv_id, agent = await conversation(core)
        first = await replies.compose(core, conv_id, agent, "one")
        second = await replies.compose(core, conv_id, agent, "two")
        clock = core.dispatcher.clock = Clock()
        await core.dispatcher.run_once()
        assert route.call_count == 1                      # the second waits behind the limit too
        clock.advance(119)
        await core.dispatcher.run_once()
        assert route.call_count == 1                      # not one second early
        clock.advance(2)
        await core.dispatcher.run_once()
        assert route.call_count == 3
        assert [(await message(core, m)).status for m in (first, second)] == ["sent", "sent"]


async def test_permanent_error_fails_with_the_platforms_reason(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        platform.post("/api/replies").mock(return_value=httpx.Response(
            400, json={"error": "This user does not accept messages"}))
        conv_id, agent = await conversation(core)
        message_id = await replies.compose(core, conv_id, agent, "Hei")
        await core.dispatcher.run_once()
        failed = await message(core, message_id)
        assert failed.status == "failed" and "does not accept messages" in failed.error
        async with core.engine.connect() as conn:
            assert (await conn.execute(sa.select(out_t.c.status))).scalar_one() == "failed"
        platform.post("/api/replies").mock(return_value=OK)     # the agent fixed it; send again
        await replies.retry(core, message_id)
        await core.dispatcher.run_once()
        assert (await message(core, message_id)).status == "sent"
        with pytest.raises(replies.ReplyRejected, match="Only a failed reply"):
            await replies.retry(core, message_id)


async def test_rejected_token_blocks_the_channel_and_keeps_the_reply(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        platform.post("/api/replies").mock(return_value=httpx.Response(401, json={"error": "token revoked"}))
        conv_id, agent = await conversation(core)
        message_id = await replies.compose(core, conv_id, agent, "Hei")
        await core.dispatcher.run_once()
        async with core.engine.connect() as conn:
            status = (await conn.execute(sa.select(chan_t.c.status))).scalar_one()
            entry = (await conn.execute(sa.select(out_t))).one()
        assert status == "needs_reauth"
        assert entry.status == "pending" and "re-authorisation" in entry.last_error
        assert (await message(core, message_id)).status == "queued"
        with pytest.raises(replies.ReplyRejected, match="re-authorisation"):
            await replies.compose(core, conv_id, agent, "another")


async def test_crash_between_send_and_mark_resends_with_the_same_key(database_url):
    """Documented at-least-once: the platform accepted, we died before recording it. After the
    lease expires the reply is sent again with the same Idempotency-Key, so a platform that
    honours the key (or echoes our reply) keeps one copy; one that does not shows two."""
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        route = platform.post("/api/replies").mock(return_value=OK)
        conv_id, agent = await conversation(core)
        message_id = await replies.compose(core, conv_id, agent, "Hei")
        clock = core.dispatcher.clock = Clock()

        class Killed(Exception):
            """Stands in for SIGKILL (the multi-process crash tests kill real processes)."""

        async def die(entry, sent):
            raise Killed("process killed after the platform accepted")

        real_mark_sent, core.dispatcher.mark_sent = core.dispatcher.mark_sent, die
        with pytest.raises(Killed):
            await core.dispatcher.run_once()
        core.dispatcher.mark_sent = real_mark_sent
        await core.dispatcher.run_once()
        assert route.call_count == 1                      # the lease still holds: nobody re-sends yet
        clock.advance(121)
        await core.dispatcher.run_once()
        assert route.call_count == 2
        keys = {call.request.headers["Idempotency-Key"] for call in route.calls}
        assert keys == {f"socialcrm-outbox-{message_id}"}
        assert (await message(core, message_id)).status == "sent"


async def test_an_echo_of_our_reply_arriving_first_leaves_one_message(database_url):
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        platform.post("/api/replies").mock(return_value=OK)
        conv_id, agent = await conversation(core)
        message_id = await replies.compose(core, conv_id, agent, "Hei")
        info = (await core.channels.get(1)).info
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("echo", "sim-out-1", "cust-1", author="brand", is_self=True, text="Hei")])
        await core.dispatcher.run_once()
        async with core.engine.connect() as conn:
            out = (await conn.execute(sa.select(msg_t.c.id).where(msg_t.c.direction == "out"))).scalars().all()
        assert out == [message_id]


async def test_reply_checks_happen_before_anything_is_queued(database_url):
    async with running_core(database_url) as core:
        conv_id, agent = await conversation(core, public=True)
        with pytest.raises(replies.ReplyRejected, match="Too long .* 501 of at most 500"):
            await replies.compose(core, conv_id, agent, "x" * 501)
        with pytest.raises(replies.ReplyRejected, match="empty"):
            await replies.compose(core, conv_id, agent, "   ")
        async with core.engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(out_t))).scalar_one() == 0
        await replies.compose(core, conv_id, agent, "x" * 500)   # exactly the limit is fine


async def test_private_reply_window_is_enforced(database_url):
    async with running_core(database_url) as core:
        conv_id, agent = await conversation(core, at=utcnow() - timedelta(hours=25))
        info = await replies.composer_info(core, conv_id)
        assert not info.can_send and "window closed" in info.reason
        with pytest.raises(replies.ReplyRejected, match="window closed"):
            await replies.compose(core, conv_id, agent, "Hei")


async def test_a_reply_stops_the_clock_and_records_the_first_response(database_url):
    async with running_core(database_url) as core:
        conv_id, agent = await conversation(core)
        await replies.compose(core, conv_id, agent, "Hei")
        async with core.engine.connect() as conn:
            conv = (await conn.execute(sa.select(conv_t))).one()
            kinds = (await conn.execute(sa.select(models.ConversationEvent.__table__.c.kind))).scalars().all()
        assert conv.waiting_since is None and conv.first_response_at is not None
        assert "first_response" in kinds


async def test_stopping_lets_a_send_in_flight_finish_and_records_it(database_url):
    """A graceful shutdown must not cut off a reply the platform is accepting (that would be a
    duplicate after the restart): stop() waits for it and records it as sent."""
    import asyncio

    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        arrived = asyncio.Event()

        async def slow_accept(request):
            arrived.set()
            await asyncio.sleep(0.3)
            return OK

        route = platform.post("/api/replies").mock(side_effect=slow_accept)
        conv_id, agent = await conversation(core)
        message_id = await replies.compose(core, conv_id, agent, "Vi er på saken")
        await core.dispatcher.run_once(wait=0)          # the lane runs in the background
        await asyncio.wait_for(arrived.wait(), 5)
        await core.dispatcher.stop()
        assert route.call_count == 1
        sent = await message(core, message_id)
        assert (sent.status, sent.external_id) == ("sent", "sim-out-1")
        assert await core.dispatcher.run_once() == 0     # stopped: nothing new is claimed
