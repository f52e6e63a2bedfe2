"""Ingest: exactly once, threading, echoes, out-of-order changes, dirty text."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from socialcrm import ingest, models
from socialcrm.ingest import ChannelInfo
from tests.support import T0, add_team_and_channel, ev, minutes, running_core, signed, sim_item

msg_t, conv_t, ident_t = models.Message.__table__, models.Conversation.__table__, models.Identity.__table__
event_t, pending_t = models.ConversationEvent.__table__, models.PendingChange.__table__


async def count(engine, table, *where) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one()


async def rows(engine, table, *where, order=None):
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(table).where(*where).order_by(order or table.c.id))).all()


async def channel_info(core, channel_id) -> ChannelInfo:
    return (await core.channels.get(channel_id)).info


async def test_same_delivery_three_times_concurrently_is_stored_once(database_url):
    async with running_core(database_url) as core:
        channel_id = await add_team_and_channel(core)
        channel = await core.channels.get(channel_id)
        from socialcrm.connector import WebhookRequest

        body, headers = signed([sim_item("dm", "m-1", text="Hvor er pakken min?")])
        req = WebhookRequest.build("POST", "/", headers, {}, body)
        events = channel.connector.parse(req)
        await asyncio.gather(*(core.pipeline.submit(channel, req, events) for _ in range(3)))
        await core.pipeline.wait_idle()
        assert await count(core.engine, models.Receipt.__table__) == 3   # every delivery was stored
        assert await count(core.engine, msg_t) == 1        # but the message exists once
        assert await count(core.engine, conv_t) == 1
        assert await count(core.engine, models.Receipt.__table__, models.Receipt.__table__.c.status == "processed") == 3


async def test_concurrent_transactions_cannot_insert_a_message_twice(database_url):
    """The database, not a check-then-insert, enforces uniqueness (matters across processes)."""
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))

        async def one() -> int:
            async with core.engine.begin() as conn:
                return len((await ingest.apply(conn, info, [ev("message", "dup-1", "cust-1")])).new_messages)

        results = await asyncio.gather(*(one() for _ in range(3)), return_exceptions=True)
        assert await count(core.engine, msg_t) == 1
        assert sum(r for r in results if isinstance(r, int)) == 1


async def test_redelivery_and_repoll_are_no_ops(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        for _ in range(2):
            async with core.engine.begin() as conn:
                result = await ingest.apply(conn, info, [ev("message", "m-1", "cust-1")])
        assert result.duplicates == 1 and result.new_messages == []
        assert await count(core.engine, event_t, event_t.c.kind == "customer_message") == 1


async def test_edit_before_create_is_applied_when_the_item_arrives(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("edit", "c-1:edit:1", "post-1", public=True, text="fixed text",
                                               target="c-1", at=T0 + minutes(2))])
        assert await count(core.engine, pending_t) == 1
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("comment", "c-1", "post-1", public=True, text="typo txet")])
        (message,) = await rows(core.engine, msg_t)
        assert message.text == "fixed text" and message.edited_at == T0 + minutes(2)
        assert await count(core.engine, pending_t) == 0


async def test_older_edit_never_overwrites_a_newer_one(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [
                ev("message", "m-1", "cust-1", text="v0"),
                ev("edit", "m-1:e2", "cust-1", text="v2", target="m-1", at=T0 + minutes(2)),
                ev("edit", "m-1:e1", "cust-1", text="v1", target="m-1", at=T0 + minutes(1)),
                ev("delete", "m-1:del", "cust-1", target="m-1", at=T0 + minutes(3)),
            ])
        (message,) = await rows(core.engine, msg_t)
        assert (message.text, message.deleted) == ("v2", True)


async def test_echo_is_an_outbound_message_in_the_customers_thread(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("message", "m-1", "cust-1", text="Hei!")])
            await ingest.apply(conn, info, [ev("echo", "m-2", "cust-1", author="brand", is_self=True,
                                               text="Hei, vi ser på det", at=T0 + minutes(5))])
        assert await count(core.engine, conv_t) == 1
        out = (await rows(core.engine, msg_t, msg_t.c.external_id == "m-2"))[0]
        assert (out.direction, out.status) == ("out", "sent")
        (conv,) = await rows(core.engine, conv_t)
        assert conv.first_response_at == T0 + minutes(5) and conv.waiting_since is None


async def test_echo_without_a_conversation_never_opens_a_customer_conversation(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("echo", "m-9", "cust-7", author="brand", is_self=True)])
        (conv,) = await rows(core.engine, conv_t)
        assert conv.status == "resolved" and conv.waiting_since is None
        async with core.engine.begin() as conn:   # the customer answers: now it is theirs, and open
            await ingest.apply(conn, info, [ev("message", "m-10", "cust-7", author="cust-7", at=T0 + minutes(1))])
        (conv,) = await rows(core.engine, conv_t)
        ident = (await rows(core.engine, ident_t, ident_t.c.id == conv.identity_id))[0]
        assert conv.status == "open" and ident.external_id == "cust-7"


async def test_public_thread_is_one_conversation_per_customer_under_a_root_post(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [
                ev("comment", "c-1", "post-1", author="anna", public=True, in_reply_to="post-1"),
                ev("comment", "c-2", "post-1", author="bjorn", public=True, in_reply_to="post-1"),
                ev("comment", "c-3", "post-1", author="anna", public=True, in_reply_to="c-2", at=T0 + minutes(1)),
                ev("comment", "c-4", "post-2", author="anna", public=True, in_reply_to="post-2"),
            ])
        convs = await rows(core.engine, conv_t)
        assert sorted(c.thread_key for c in convs) == ["post-1#anna", "post-1#bjorn", "post-2#anna"]
        anna = next(c for c in convs if c.thread_key == "post-1#anna")
        assert anna.public and anna.reply_to_external_id == "c-3"   # replies answer the latest comment
        assert await count(core.engine, msg_t, msg_t.c.conversation_id == anna.id) == 2


async def test_dm_thread_is_one_conversation(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("message", f"m-{i}", "cust-1", at=T0 + minutes(i)) for i in range(3)])
        (conv,) = await rows(core.engine, conv_t)
        assert not conv.public and conv.waiting_since == T0    # the clock runs from the first unanswered message
        assert conv.sla_due_at == T0 + minutes(240)


async def test_lone_surrogates_and_nul_are_cleaned_not_fatal(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("message", "m-1", "cust-1", text="a\ud800b\x00c",
                                               name="Ola\x00 \udfff")])
        (message,) = await rows(core.engine, msg_t)
        assert message.text == "a\ufffdbc"
        (ident,) = await rows(core.engine, ident_t)
        assert ident.name == "Ola \ufffd"


async def test_a_message_after_resolve_reopens_and_restarts_the_clock(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("message", "m-1", "cust-1")])
            await conn.execute(conv_t.update().values(status="resolved", waiting_since=None, sla_due_at=None))
            await ingest.apply(conn, info, [ev("message", "m-2", "cust-1", at=T0 + minutes(30))])
        (conv,) = await rows(core.engine, conv_t)
        assert conv.status == "open" and conv.waiting_since == T0 + minutes(30)
        kinds = [e.kind for e in await rows(core.engine, event_t)]
        assert kinds == ["created", "customer_message", "reopened", "customer_message"]


async def test_delivery_status_before_the_send_returned_is_applied_later(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("status", "s-1", "cust-1", target="out-1",
                                               detail={"status": "delivered"})])
        assert await count(core.engine, pending_t) == 1


async def test_a_mixed_batch_applies_in_order_like_one_by_one(database_url):
    """Runs of customer items take the bulk path; echoes and edits between them keep their order."""
    batch = [
        ev("message", "m-1", "cust-1", text="first", at=T0),
        ev("message", "m-1", "cust-1", text="first", at=T0),                  # redelivered in the same batch
        ev("echo", "m-2", "cust-1", author="brand", is_self=True, text="answer", at=T0 + minutes(3)),
        ev("message", "m-3", "cust-1", text="thanks, one more thing", at=T0 + minutes(5)),
        ev("edit", "m-1:e", "cust-1", text="first (edited)", target="m-1", at=T0 + minutes(6)),
        ev("comment", "c-1", "post-9", author="cust-2", public=True, at=T0 + minutes(7)),
    ]
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            result = await ingest.apply(conn, info, batch)
        assert result.duplicates == 1 and len(result.new_messages) == 4
        dm = (await rows(core.engine, conv_t, conv_t.c.thread_key == "cust-1"))[0]
        # answered at +3, the customer wrote again at +5: waiting again since +5, first response kept
        assert dm.first_response_at == T0 + minutes(3) and dm.waiting_since == T0 + minutes(5)
        assert dm.last_message_preview == "thanks, one more thing"
        texts = [m.text for m in await rows(core.engine, msg_t, msg_t.c.conversation_id == dm.id)]
        assert texts == ["first (edited)", "answer", "thanks, one more thing"]
        public = (await rows(core.engine, conv_t, conv_t.c.thread_key == "post-9#cust-2"))[0]
        assert public.public and public.sla_due_at == T0 + minutes(7 + 60)


async def test_profile_changes_update_the_identity(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("message", "m-1", "cust-1", name="Kari", followers=10)])
            await ingest.apply(conn, info, [ev("message", "m-2", "cust-1", name="Kari N.", followers=12000)])
        (ident,) = await rows(core.engine, ident_t)
        assert (ident.name, ident.followers) == ("Kari N.", 12000)


async def test_a_watermark_read_marks_what_we_sent_before_it_and_leaves_nothing_pending(database_url):
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [
                ev("message", "m-1", "cust-1"),
                ev("echo", "out-1", "cust-1", author="brand", is_self=True, at=T0 + minutes(1)),
                ev("echo", "out-2", "cust-1", author="brand", is_self=True, at=T0 + minutes(10)),
                ev("read", "cust-1:read:x", "cust-1", detail={"watermark": int((T0 + minutes(5)).timestamp() * 1000)}),
            ])
        statuses = {m.external_id: m.status for m in await rows(core.engine, msg_t, msg_t.c.direction == "out")}
        assert statuses == {"out-1": "read", "out-2": "sent"}
        assert await count(core.engine, pending_t) == 0


async def test_answering_our_reply_continues_the_conversation_where_threads_are_named_after_the_parent(database_url):
    """Mastodon and X webhooks name a reply's thread after the item it answers (DESIGN §4)."""
    async with running_core(database_url) as core:
        info = await channel_info(core, await add_team_and_channel(core))
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [
                ev("mention", "A", "A", author="kari", public=True, text="@brand pakken er borte"),
                ev("echo", "R", "A", author="brand", is_self=True, public=True, in_reply_to="A", at=T0 + minutes(2)),
                ev("comment", "B", "R", author="kari", public=True, in_reply_to="R", at=T0 + minutes(3)),
                ev("comment", "C", "B", author="kari", public=True, in_reply_to="B", at=T0 + minutes(4)),
                ev("comment", "X", "R", author="ola", public=True, in_reply_to="R", at=T0 + minutes(5)),
            ])
        convs = {c.thread_key: c.id for c in await rows(core.engine, conv_t)}
        assert set(convs) == {"A#kari", "R#ola"}        # kari's whole exchange is one conversation
        kari = [m.external_id for m in await rows(core.engine, msg_t, msg_t.c.conversation_id == convs["A#kari"])]
        assert kari == ["A", "R", "B", "C"]


def test_the_raw_body_precheck_finds_every_escape_that_can_carry_unstorable_text():
    from socialcrm.text import needs_cleaning

    assert not needs_cleaning(b'{"text": "Hei p\\u00e5 deg \xc3\xa6"}')      # plain non-ASCII: nothing to clean
    assert needs_cleaning(b'{"text": "\\ud800"}') and needs_cleaning(b'{"text": "\\uDFFF"}')
    assert needs_cleaning(b'{"text": "a\\u0000b"}')
    assert needs_cleaning(b'{"text": "\\ud83d\\ude00"}')                  # a valid pair is checked too
