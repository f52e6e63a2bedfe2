"""Presence over server-sent events: another agent's stream hears who is viewing and typing."""

from __future__ import annotations

import asyncio
import json

from socialcrm.users import create_user
from tests.support import ev
from tests.web.conftest import PASSWORD, conversation_of
from tests.web.test_live import _next_event, _wait_for


async def _presence(resp, predicate) -> dict:
    """The next presence event satisfying predicate (others may come first)."""
    while True:
        name, data = await _next_event(resp)
        if name == "presence" and predicate(json.loads(data)):
            return json.loads(data)


async def _conv(world) -> int:
    await world.ingest(world.care_channel, [ev("comment", "c-1", "post-1", public=True, text="Hello?")])
    return await conversation_of(world.core, world.care_channel, "c-1")


async def test_viewing_typing_and_leaving_reach_the_other_agent(signed_in, world) -> None:
    await create_user(world.core.engine, "bo", PASSWORD, "agent", "Bo Berg", ["Care"])
    conv = await _conv(world)
    kari, bo = await signed_in("agent"), await signed_in("bo")
    await kari.get(f"/conversations/{conv}")
    kari_stream = await kari.session.get(f"/events?conversation={conv}")
    assert kari_stream.status == 200
    first = await _presence(kari_stream, lambda d: True)
    assert first == {"text": "", "people": []}                    # alone at first

    bo_stream = await bo.session.get(f"/events?conversation={conv}")
    seen = await _presence(kari_stream, lambda d: d["people"])
    assert seen["text"] == "Bo Berg is also viewing."
    assert (await _presence(bo_stream, lambda d: d["people"]))["text"] == "Kari Agent is also viewing."

    await bo.get(f"/conversations/{conv}")
    resp = await bo.session.post(f"/conversations/{conv}/typing", headers={"X-CSRF-Token": bo.csrf})
    assert resp.status == 204
    typing = await _presence(kari_stream, lambda d: any(p["typing"] for p in d["people"]))
    assert typing == {"text": "Bo Berg is typing.", "people": [{"name": "Bo Berg", "typing": True}]}

    bo_stream.close()
    gone = await _presence(kari_stream, lambda d: not d["people"])
    assert gone["text"] == ""
    kari_stream.close()
    await _wait_for(lambda: world.core.hub.subscriber_count == 0, timeout=20)


async def test_presence_stays_within_the_team(signed_in, world) -> None:
    conv = await _conv(world)
    outsider = await signed_in("outsider")
    resp = await outsider.session.get(f"/events?conversation={conv}")
    assert resp.status == 404
    await outsider.get("/")
    resp = await outsider.session.post(f"/conversations/{conv}/typing", headers={"X-CSRF-Token": outsider.csrf})
    assert resp.status == 404
    resp = await outsider.session.get("/events?conversation=abc")
    assert resp.status == 400


async def test_typing_needs_the_csrf_token(signed_in, world) -> None:
    conv = await _conv(world)
    b = await signed_in("agent")
    resp = await b.session.post(f"/conversations/{conv}/typing")
    assert resp.status == 403


async def test_typing_floods_are_relayed_once(signed_in, world) -> None:
    conv = await _conv(world)
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    async with world.core.hub.subscribe() as queue:
        for _ in range(5):
            resp = await b.session.post(f"/conversations/{conv}/typing", headers={"X-CSRF-Token": b.csrf})
            assert resp.status == 204
        await asyncio.sleep(0)
        typing = [e for e in _drain(queue) if e.get("state") == "typing"]
    assert len(typing) == 1 and "text" not in typing[0]


def _drain(queue) -> list[dict]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_a_viewer_from_another_process_is_greeted_once(signed_in, world) -> None:
    """An event from another process (as the cross-process hub delivers it) is shown, and answered
    with our own "viewing" at once, so the newcomer need not wait for our next heartbeat."""
    from socialcrm.presence import presence_event

    conv = await _conv(world)
    kari = await signed_in("agent")
    team_id = (await world.core.channels.get(world.care_channel)).row.team_id
    stream = await kari.session.get(f"/events?conversation={conv}")
    await _presence(stream, lambda d: True)
    async with world.core.hub.subscribe() as queue:
        for _ in range(2):
            world.core.hub.publish(presence_event("viewing", conv, team_id, 999, "Remote Ria"))
        seen = await _presence(stream, lambda d: d["people"])
        assert seen["text"] == "Remote Ria is also viewing."
        await asyncio.sleep(0.05)
        greetings = [e for e in _drain(queue) if e.get("type") == "presence" and e.get("user_id") == world.agent_id]
    assert [g["state"] for g in greetings] == ["viewing"]
    stream.close()
