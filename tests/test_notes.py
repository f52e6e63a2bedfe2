"""Internal notes: never sent, mentions resolved at write time, one notification per person."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx
import sqlalchemy as sa

from socialcrm import ingest, models, notes, notifications, replies
from socialcrm.users import create_user
from tests.support import PLATFORM, T0, add_team_and_channel, ev, running_core

msg_t, out_t = models.Message.__table__, models.OutboxEntry.__table__
conv_t, note_t = models.Conversation.__table__, models.Notification.__table__
PASSWORD = "correct horse battery"


@pytest.mark.parametrize(("text", "names"), [
    ("@agentb can you check?", ["agentb"]),
    ("thanks @Kari.Nordmann.", ["kari.nordmann"]),
    ("@ana, @ana and @bo-b!", ["ana", "bo-b"]),
    ("write to kari@example.com", []),
    ("just @ alone", []),
    ("first line\n@ola second", ["ola"]),
])
def test_mentions_are_read_from_the_text(text, names):
    assert notes.mentioned_names(text) == names


async def _setup(core):
    ch = await add_team_and_channel(core, "Care")
    await add_team_and_channel(core, "Other", "brand-2", secret="x")
    users = {}
    for name, role, teams in [("kari", "agent", ["Care"]), ("agentb", "agent", ["Care"]),
                              ("outsider", "agent", ["Other"]), ("lea", "lead", []), ("gone", "agent", ["Care"])]:
        users[name] = (await create_user(core.engine, name, PASSWORD, role, name.title(), teams)).id
    async with core.engine.begin() as conn:
        await conn.execute(models.User.__table__.update().where(models.User.__table__.c.username == "gone")
                           .values(is_active=False))
    info = (await core.channels.get(ch)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("message", "m-1", "dm-1", text="Where is my parcel?", at=T0)], now=T0)
        conv = await conn.scalar(sa.select(conv_t.c.id))
    return conv, users


async def test_a_note_notifies_who_may_see_it_and_reports_the_rest(database_url):
    async with running_core(database_url) as core:
        conv, users = await _setup(core)
        async with core.hub.subscribe() as queue:
            result = await notes.add_note(core, conv, users["kari"],
                                          "@agentb @LEA @outsider @gone @nobody @kari can you check?")
            published = [queue.get_nowait() for _ in range(queue.qsize())]
        assert result.notified == sorted([users["agentb"], users["lea"]])
        assert result.unmatched == ["outsider", "gone", "nobody"]      # and yourself: matched, not told
        async with core.engine.connect() as conn:
            rows = (await conn.execute(sa.select(note_t).order_by(note_t.c.user_id))).all()
        assert [(r.user_id, r.conversation_id, r.message_id, r.actor_user_id, r.read_at) for r in rows] == [
            (uid, conv, result.message_id, users["kari"], None) for uid in sorted([users["agentb"], users["lea"]])]
        assert {"type": "notification", "user_id": users["agentb"]} in published
        assert {"type": "notification", "user_id": users["outsider"]} not in published
        assert {"type": "conversation", "conversation_id": conv, "team_id": 1} in published


async def test_a_note_is_never_sent_while_a_reply_is(database_url):
    async with running_core(database_url) as core:
        conv, users = await _setup(core)
        with respx.mock(base_url=PLATFORM, assert_all_called=False) as platform:
            sent = platform.post("/api/replies").mock(return_value=httpx.Response(200, json={"id": "r-1"}))
            await notes.add_note(core, conv, users["kari"], "internal: refund approved @agentb")
            await core.dispatch_outbox()
            assert sent.call_count == 0
            await replies.compose(core, conv, users["kari"], "Your parcel is on its way")
            await core.dispatch_outbox()
        assert [json.loads(c.request.content)["text"] for c in sent.calls] == ["Your parcel is on its way"]
        async with core.engine.connect() as conn:
            note = (await conn.execute(sa.select(msg_t).where(msg_t.c.direction == "note"))).one()
            queued_for = set((await conn.execute(sa.select(out_t.c.message_id))).scalars())
        assert note.id not in queued_for and note.external_id is None and note.public is False
        assert note.text == "internal: refund approved @agentb" and note.author_user_id == users["kari"]


async def test_a_note_leaves_the_queue_preview_and_clock_alone(database_url):
    async with running_core(database_url) as core:
        conv, users = await _setup(core)
        columns = [conv_t.c.status, conv_t.c.last_message_preview, conv_t.c.last_message_at,
                   conv_t.c.waiting_since, conv_t.c.sla_due_at, conv_t.c.first_response_at, conv_t.c.priority]
        async with core.engine.connect() as conn:
            before = (await conn.execute(sa.select(*columns))).one()
        await notes.add_note(core, conv, users["kari"], "checking the warehouse")
        async with core.engine.connect() as conn:
            assert (await conn.execute(sa.select(*columns))).one() == before


@pytest.mark.parametrize(("text", "why"), [(" \n  ", "Write the note first."),
                                           ("@agentb " + "x" * 4993, "at most 5000 characters")])
async def test_an_empty_or_long_note_is_refused_and_nothing_is_stored(database_url, text, why):
    async with running_core(database_url) as core:
        conv, users = await _setup(core)
        with pytest.raises(notes.NoteRejected, match=why):
            await notes.add_note(core, conv, users["kari"], text)
        async with core.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(msg_t)
                                     .where(msg_t.c.direction == "note")) == 0
            assert await conn.scalar(sa.select(sa.func.count()).select_from(note_t)) == 0


async def test_notifications_count_list_and_are_marked_read_by_their_owner_only(database_url):
    async with running_core(database_url) as core:
        conv, users = await _setup(core)
        for i in range(3):
            await notes.add_note(core, conv, users["kari"], f"@agentb look {i}")
        b = users["agentb"]
        assert await notifications.unread_count(core.engine, b) == 3
        items = await notifications.recent(core.engine, b)
        assert [i.snippet for i in items] == ["@agentb look 2", "@agentb look 1", "@agentb look 0"]
        assert all(i.actor_name == "Kari" and i.conversation_id == conv and i.unread for i in items)
        assert await notifications.open_one(core.engine, users["lea"], items[0].id) is None   # not hers
        assert await notifications.unread_count(core.engine, b) == 3
        assert await notifications.open_one(core.engine, b, items[0].id) == conv
        assert await notifications.unread_count(core.engine, b) == 2
        assert await notifications.mark_read(core.engine, users["lea"], [items[1].id]) == 0
        assert await notifications.mark_read(core.engine, b, [items[1].id]) == 1
        assert await notifications.mark_read(core.engine, b) == 1
        assert await notifications.unread_count(core.engine, b) == 0
        assert [i.unread for i in await notifications.recent(core.engine, b)] == [False, False, False]


async def test_the_hub_delivers_a_notification_to_a_waiting_subscriber(database_url):
    async with running_core(database_url) as core:
        conv, users = await _setup(core)
        async with core.hub.subscribe() as queue:
            await notes.add_note(core, conv, users["kari"], "@agentb ping")
            events = [await asyncio.wait_for(queue.get(), 1) for _ in range(queue.qsize())]
        assert [e for e in events if e["type"] == "notification"] == [{"type": "notification",
                                                                        "user_id": users["agentb"]}]
