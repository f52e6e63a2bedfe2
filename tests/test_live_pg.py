"""Live events across processes over HTTP: a browser connected to app 1 hears of a message that
arrived by webhook at app 2 (two apps, two Cores, one PostgreSQL database)."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

import aiohttp
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from socialcrm import models, users
from socialcrm.users import create_user
from socialcrm.web.app import create_app
from tests.support import add_team_and_channel, running_core, signed, sim_item
from tests.test_scaleout import wait_for
from tests.web.conftest import FAST_HASHER, PASSWORD, Browser
from tests.web.test_live import _next_event


async def started(stack: AsyncExitStack, core) -> TestServer:
    server = TestServer(create_app(core.settings, core))
    await server.start_server()
    stack.push_async_callback(server.close)
    return server


async def test_a_browser_on_app_1_hears_of_a_webhook_received_by_app_2(pg_url, monkeypatch):  # noqa: F811
    monkeypatch.setattr(users, "_hasher", FAST_HASHER)
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(running_core(pg_url))
        two = await stack.enter_async_context(running_core(pg_url))
        channel_id = await add_team_and_channel(one)
        await create_user(one.engine, "agent", PASSWORD, "agent", "Kari Agent", ["Care"])
        app1, app2 = await started(stack, one), await started(stack, two)
        browser = Browser(app1)
        stack.push_async_callback(browser.close)
        assert (await browser.login("agent")).status == 303
        stream = await browser.session.get("/events")
        assert stream.status == 200
        await wait_for(lambda: one.hub.subscriber_count == 1)

        body, headers = signed([sim_item("dm", "m-1", text="Where is my parcel?")])
        async with aiohttp.ClientSession() as platform:
            async with platform.post(app2.make_url(f"/webhooks/simulator/{channel_id}"), data=body,
                                     headers=headers) as resp:
                assert resp.status == 200
        await two.pipeline.wait_idle()
        msg_t = models.Message.__table__
        async with two.engine.connect() as conn:
            conversation_id = await conn.scalar(sa.select(msg_t.c.conversation_id).where(msg_t.c.external_id == "m-1"))
        name, data = await asyncio.wait_for(_next_event(stream), 5)
        assert (name, json.loads(data)) == (f"conversation-{conversation_id}",
                                            {"type": "conversation", "conversation_id": conversation_id})
        assert (await asyncio.wait_for(_next_event(stream), 5))[0] == "inbox"
        stream.close()
