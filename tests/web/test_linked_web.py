"""One tracked thread on the page: the banner both ways, the comment as context, the close-out note."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from socialcrm import ingest, models, replies
from tests.support import T0, ev, minutes
from tests.web.conftest import conversation_of

conv_t, msg_t = models.Conversation.__table__, models.Message.__table__


async def _linked(world) -> tuple[int, int]:
    await world.ingest(world.care_channel, [ev("comment", "c-1", "post-1", author="sigrid", public=True,
                                               text="My parcel <never> came", at=T0)])
    public = await conversation_of(world.core, world.care_channel, "c-1")
    async with world.core.engine.begin() as conn:
        conv = (await conn.execute(sa.select(conv_t).where(conv_t.c.id == public))).one()
        mid = await replies.queue_message(conn, conv, world.agent_id, "Check your inbox", False, "private_reply",
                                          {}, T0 + minutes(5))
        await conn.execute(msg_t.update().where(msg_t.c.id == mid).values(status="sent", external_id="pr-1"))
    channel = await world.core.channels.get(world.care_channel)
    async with world.core.engine.begin() as conn:
        # The simulator declares no private replies to comments; this story's platform has them.
        info = dataclasses.replace(channel.info, private_reply_to_public=True)
        await ingest.apply(conn, info, [ev("message", "dm-1", "sigrid", author="sigrid", text="Order 42",
                                         at=T0 + minutes(30))], now=T0 + minutes(30))
    return public, await conversation_of(world.core, world.care_channel, "dm-1")


async def test_banner_links_both_ways_and_shows_the_comment(signed_in, world) -> None:
    public, dm = await _linked(world)
    b = await signed_in("agent")
    _, html = await b.get(f"/conversations/{dm}")
    banner = html.split('id="linked-thread"')[1].split("</aside>")[0]
    assert f'href="/conversations/{public}"' in banner
    assert "My parcel &lt;never&gt; came" in banner                 # the comment, escaped, as context
    _, html = await b.get(f"/conversations/{public}")
    banner = html.split('id="linked-thread"')[1].split("</aside>")[0]
    assert f'href="/conversations/{dm}"' in banner
    assert "Post close-out note" in banner


async def test_close_out_note_is_a_public_reply_under_the_comment_offered_once(signed_in, world) -> None:
    public, _ = await _linked(world)
    b = await signed_in("agent")
    _, html = await b.get(f"/conversations/{public}")
    resp, _ = await b.post(f"/conversations/{public}/reply", {"text": "We've sent you a private message.",
                                                              "seen_public_replies": "0"})
    assert resp.status == 303
    async with world.core.engine.connect() as conn:
        note = (await conn.execute(sa.select(msg_t).where(msg_t.c.conversation_id == public,
                                                          msg_t.c.public.is_(True), msg_t.c.direction == "out"))).one()
    assert note.text.startswith("We've sent you a private message.") and note.in_reply_to_external_id == "c-1"
    _, html = await b.get(f"/conversations/{public}")
    assert "Post close-out note" not in html


async def test_unlinked_conversations_show_no_banner(signed_in, world) -> None:
    await world.ingest(world.care_channel, [ev("message", "m-1", "cust-1", text="hi")])
    conv = await conversation_of(world.core, world.care_channel, "m-1")
    _, html = await (await signed_in("agent")).get(f"/conversations/{conv}")
    assert 'id="linked-thread"' not in html


async def test_the_linked_banner_is_not_shown_to_other_teams(signed_in, world) -> None:
    _, dm = await _linked(world)
    resp, html = await (await signed_in("outsider")).get(f"/conversations/{dm}")
    assert resp.status == 404 and "My parcel" not in html
