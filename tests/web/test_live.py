"""Server-sent events: named for the page, filtered by team, cleaned up when the browser goes."""

from __future__ import annotations

import asyncio

from socialcrm.users import Viewer
from socialcrm.web.live import sse_name, visible


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _next_event(resp) -> tuple[str, str]:
    name = data = ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\r\n")
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line.split(":", 1)[1].strip()
        elif line == "" and name:
            return name, data


async def test_stream_forwards_only_the_viewers_teams(signed_in, world) -> None:
    hub = world.core.hub
    b = await signed_in("agent")
    care_team = (await world.core.channels.get(world.care_channel)).row.team_id
    other_team = (await world.core.channels.get(world.other_channel)).row.team_id
    resp = await b.session.get("/events")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    await _wait_for(lambda: hub.subscriber_count == 1)
    hub.publish({"type": "conversation", "conversation_id": 99, "team_id": other_team})
    hub.publish({"type": "inbox", "team_id": other_team})
    hub.publish({"type": "conversation", "conversation_id": 7, "team_id": care_team})
    hub.publish({"type": "inbox", "team_id": care_team})
    assert await _next_event(resp) == ("conversation-7", '{"type": "conversation", "conversation_id": 7}')
    assert (await _next_event(resp))[0] == "inbox"
    resp.close()
    await _wait_for(lambda: hub.subscriber_count == 0, timeout=20)


async def test_stream_requires_login(browser, world) -> None:
    resp = await browser().session.get("/events", allow_redirects=False)
    assert resp.status == 401


def test_event_names_and_visibility() -> None:
    agent = Viewer(1, "a", "", "agent", False, 0, frozenset({1}))
    lead = Viewer(2, "l", "", "lead", False, 0, frozenset())
    assert sse_name({"type": "inbox", "team_id": 1}) == "inbox"
    assert sse_name({"type": "conversation", "conversation_id": 5, "team_id": 1}) == "conversation-5"
    assert sse_name({"type": "something-else"}) is None
    assert visible({"type": "inbox", "team_id": 1}, agent)
    assert not visible({"type": "inbox", "team_id": 2}, agent)
    assert visible({"type": "inbox", "team_id": 2}, lead)
