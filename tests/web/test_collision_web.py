"""Collision guard through the web: the second public reply is stopped, shown why, draft kept."""

from __future__ import annotations

import re

import sqlalchemy as sa

from socialcrm import models
from socialcrm.users import create_user
from tests.support import ev
from tests.web.conftest import PASSWORD, conversation_of

MARKER = re.compile(r'name="seen_public_replies" value="(\d+)"')


async def _public(world) -> int:
    await world.ingest(world.care_channel, [ev("comment", "c-1", "post-1", public=True, text="Where is my order?")])
    return await conversation_of(world.core, world.care_channel, "c-1")


async def _outbound(world, conv: int) -> list[str]:
    m = models.Message.__table__
    async with world.core.engine.connect() as conn:
        return list((await conn.execute(sa.select(m.c.text).where(
            m.c.conversation_id == conv, m.c.direction == "out").order_by(m.c.id))).scalars())


async def test_second_agent_is_blocked_sees_the_reply_and_keeps_the_draft(signed_in, world) -> None:
    await create_user(world.core.engine, "bo", PASSWORD, "agent", "Bo Berg", ["Care"])
    conv = await _public(world)
    kari, bo = await signed_in("agent"), await signed_in("bo")
    _, kari_page = await kari.get(f"/conversations/{conv}")
    _, bo_page = await bo.get(f"/conversations/{conv}")
    assert MARKER.search(kari_page).group(1) == MARKER.search(bo_page).group(1) == "0"

    resp, _ = await kari.post(f"/conversations/{conv}/reply", {"text": "On its way!", "seen_public_replies": "0"})
    assert resp.status == 303
    resp, html = await bo.post(f"/conversations/{conv}/reply",
                               {"text": "Let me <check> that", "seen_public_replies": "0"})
    assert resp.status == 409
    assert "Not sent: Kari Agent replied publicly while you were writing." in html
    collision = html.split('id="collision"')[1].split("</section>")[0]
    assert "Kari Agent" in collision and "On its way!" in collision
    assert "Let me &lt;check&gt; that</textarea>" in html          # the draft, escaped, kept
    assert MARKER.search(html).group(1) == "1"                       # now they have seen it
    assert await _outbound(world, conv) == ["On its way!"]

    # Sending again after seeing it is the explicit "send anyway".
    resp, _ = await bo.post(f"/conversations/{conv}/reply", {"text": "Let me check that", "seen_public_replies": "1"})
    assert resp.status == 303
    assert await _outbound(world, conv) == ["On its way!", "Let me check that"]


async def test_unreadable_marker_is_a_422_and_nothing_is_stored(signed_in, world) -> None:
    conv = await _public(world)
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    resp, html = await b.post(f"/conversations/{conv}/reply", {"text": "hi", "seen_public_replies": "x1"})
    assert resp.status == 422 and "unreadable draft marker" in html
    assert await _outbound(world, conv) == []
