"""Collision guard: a public reply is refused when a colleague or the native app answered meanwhile."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from socialcrm import collision, ingest, models, replies
from tests.support import T0, add_agent, add_team_and_channel, ev, running_core

msg_t, out_t = models.Message.__table__, models.OutboxEntry.__table__


async def public_thread(core) -> tuple[int, int]:
    channel_id = await add_team_and_channel(core)
    info = (await core.channels.get(channel_id)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("comment", "c-1", "post-1", public=True, text="Broken again!")])
    async with core.engine.connect() as conn:
        conv = await conn.scalar(sa.select(msg_t.c.conversation_id).where(msg_t.c.external_id == "c-1"))
    return channel_id, conv


async def outbound_texts(core, conv: int) -> list[str]:
    async with core.engine.connect() as conn:
        return list((await conn.execute(sa.select(msg_t.c.text).where(
            msg_t.c.conversation_id == conv, msg_t.c.direction == "out").order_by(msg_t.c.id))).scalars())


async def test_a_colleagues_reply_since_the_draft_began_stops_the_send(database_url):
    async with running_core(database_url) as core:
        _, conv = await public_thread(core)
        ana, bo = await add_agent(core, "ana", online=False), await add_agent(core, "bo", online=False)
        await replies.compose(core, conv, ana, "Sorry, we are on it", seen_public_replies=0)
        with pytest.raises(collision.ReplyCollision) as caught:
            await replies.compose(core, conv, bo, "So sorry! Looking now", seen_public_replies=0)
        assert [r.text for r in caught.value.newer] == ["Sorry, we are on it"]
        assert caught.value.newer[0].author == "Ana" and caught.value.seen_now == 1
        assert "Ana replied publicly while you were writing" in str(caught.value)
        assert await outbound_texts(core, conv) == ["Sorry, we are on it"]
        async with core.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(out_t)) == 1
        # Having seen it (the page re-rendered with the new marker), Bo may still send.
        await replies.compose(core, conv, bo, "Adding: the fix ships tonight", seen_public_replies=1)
        assert len(await outbound_texts(core, conv)) == 2


async def test_an_echo_from_the_native_app_counts_as_a_reply(database_url):
    async with running_core(database_url) as core:
        channel_id, conv = await public_thread(core)
        bo = await add_agent(core, "bo", online=False)
        info = (await core.channels.get(channel_id)).info
        echo = ev("comment", "c-2", "post-1", author="brand", public=True, is_self=True, in_reply_to="c-1",
                  text="Answered from the phone", name="Acme", at=T0 + timedelta(minutes=2))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [echo])
        with pytest.raises(collision.ReplyCollision) as caught:
            await replies.compose(core, conv, bo, "Hello!", seen_public_replies=0)
        assert caught.value.newer[0].native_app is True
        assert caught.value.newer[0].author == "Acme (in the platform's own app)"
        assert await outbound_texts(core, conv) == ["Answered from the phone"]


async def test_a_failed_colleague_reply_does_not_block(database_url):
    async with running_core(database_url) as core:
        _, conv = await public_thread(core)
        ana, bo = await add_agent(core, "ana", online=False), await add_agent(core, "bo", online=False)
        first = await replies.compose(core, conv, ana, "Will fail", seen_public_replies=0)
        async with core.engine.begin() as conn:
            await conn.execute(msg_t.update().where(msg_t.c.id == first).values(status="failed"))
        await replies.compose(core, conv, bo, "Goes out", seen_public_replies=0)
        assert await outbound_texts(core, conv) == ["Will fail", "Goes out"]


async def test_private_replies_and_unguarded_posts_are_not_blocked(database_url):
    async with running_core(database_url) as core:
        channel_id = await add_team_and_channel(core)
        info = (await core.channels.get(channel_id)).info
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("message", "m-1", "cust-1", text="hi")])
        ana, bo = await add_agent(core, "ana", online=False), await add_agent(core, "bo", online=False)
        await replies.compose(core, 1, ana, "Private one", seen_public_replies=0)
        await replies.compose(core, 1, bo, "Private two", seen_public_replies=0)
        assert await outbound_texts(core, 1) == ["Private one", "Private two"]


async def test_two_agents_sending_at_the_same_moment_cannot_both_pass(database_url):
    async with running_core(database_url) as core:
        _, conv = await public_thread(core)
        ana, bo = await add_agent(core, "ana", online=False), await add_agent(core, "bo", online=False)
        results = await asyncio.gather(
            replies.compose(core, conv, ana, "Ana's answer", seen_public_replies=0),
            replies.compose(core, conv, bo, "Bo's answer", seen_public_replies=0),
            return_exceptions=True)
        refused = [r for r in results if isinstance(r, collision.ReplyCollision)]
        assert len(refused) == 1, results
        assert len(await outbound_texts(core, conv)) == 1


@pytest.mark.parametrize("value, expected", [("", None), (None, None), ("0", 0), (" 3 ", 3)])
def test_marker_field(value, expected):
    assert collision.parse_marker(value) == expected


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "9" * 12])
def test_unreadable_marker_is_refused_in_words(value):
    with pytest.raises(replies.ReplyRejected, match="unreadable draft marker"):
        collision.parse_marker(value)


def test_marker_counts_public_outbound_messages_only():
    class M:
        def __init__(self, direction, public):
            self.direction, self.public = direction, public

    shown = [M("in", True), M("out", True), M("note", False), M("out", False), M("out", True)]
    assert collision.marker(shown) == 2


async def test_two_private_replies_to_one_comment_at_the_same_moment_queue_one(database_url):
    from tests.test_replies import MetaLike, conversation

    async with running_core(database_url, connectors=(MetaLike,)) as core:
        conv, kari = await conversation(core, "metalike", public=True)
        bo = await add_agent(core, "bo", online=False)
        results = await asyncio.gather(
            replies.compose(core, conv, kari, "Sent you a DM", mode="private_reply"),
            replies.compose(core, conv, bo, "Check your inbox", mode="private_reply"),
            return_exceptions=True)
        refused = [r for r in results if isinstance(r, replies.ReplyRejected)]
        assert len(refused) == 1, results
        assert "only one private reply per comment" in str(refused[0]) or "already been answered" in str(refused[0])
        async with core.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(msg_t).where(
                msg_t.c.kind == "private_reply")) == 1
