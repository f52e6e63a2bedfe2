"""Webhook endpoints over HTTP: every status, and that 200 means stored."""

from __future__ import annotations

from contextlib import asynccontextmanager

import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from socialcrm import models
from socialcrm.web.app import create_app
from tests.support import SECRET, add_team_and_channel, running_core, signed, sim_item

receipt_t, msg_t = models.Receipt.__table__, models.Message.__table__


@asynccontextmanager
async def client_with_channel(database_url):
    async with running_core(database_url) as core:
        channel_id = await add_team_and_channel(core)
        async with TestClient(TestServer(create_app(core.settings, core))) as client:
            yield client, core, channel_id


async def counts(core) -> tuple[int, int]:
    async with core.engine.connect() as conn:
        receipts = (await conn.execute(sa.select(sa.func.count()).select_from(receipt_t))).scalar_one()
        messages = (await conn.execute(sa.select(sa.func.count()).select_from(msg_t))).scalar_one()
    return receipts, messages


async def test_signed_delivery_is_stored_before_200_and_ingested(database_url):
    async with client_with_channel(database_url) as (client, core, channel_id):
        body, headers = signed([sim_item("dm", "m-1", text="Hei på deg")])
        resp = await client.post(f"/webhooks/simulator/{channel_id}", data=body, headers=headers)
        assert resp.status == 200, await resp.text()
        async with core.engine.connect() as conn:   # stored at the moment of the answer
            stored = (await conn.execute(sa.select(receipt_t.c.body, receipt_t.c.headers))).one()
        assert stored.body == body
        assert stored.headers["X-Simulator-Signature"] == "[redacted]"
        await core.pipeline.wait_idle()
        assert await counts(core) == (1, 1)


async def test_bad_or_missing_signature_is_401_and_stores_nothing(database_url):
    async with client_with_channel(database_url) as (client, core, channel_id):
        body, headers = signed([sim_item("dm", "m-1")], secret="not-the-secret")
        assert (await client.post(f"/webhooks/simulator/{channel_id}", data=body, headers=headers)).status == 401
        assert (await client.post(f"/webhooks/simulator/{channel_id}", data=body)).status == 401
        assert await counts(core) == (0, 0)


async def test_malformed_body_is_400_and_stores_nothing(database_url):
    async with client_with_channel(database_url) as (client, core, channel_id):
        body, headers = signed([{"type": "dm", "timestamp": 1}])        # no id
        resp = await client.post(f"/webhooks/simulator/{channel_id}", data=body, headers=headers)
        assert resp.status == 400 and "malformed" in await resp.text()
        assert await counts(core) == (0, 0)


async def test_understood_but_unhandled_event_is_200(database_url):
    async with client_with_channel(database_url) as (client, core, channel_id):
        body, headers = signed([{"type": "follow", "id": "f-1", "timestamp": 1_764_061_200_000}])
        resp = await client.post(f"/webhooks/simulator/{channel_id}", data=body, headers=headers)
        assert resp.status == 200 and "ignored" in await resp.text()
        assert await counts(core) == (0, 0)


async def test_body_over_one_mib_is_413(database_url):
    async with client_with_channel(database_url) as (client, core, channel_id):
        body, headers = signed([sim_item("dm", "m-1", text="x" * (1024 * 1024))])
        resp = await client.post(f"/webhooks/simulator/{channel_id}", data=body, headers=headers)
        assert resp.status == 413
        assert await counts(core) == (0, 0)


async def test_database_that_cannot_store_answers_503_so_the_platform_retries(database_url):
    async with client_with_channel(database_url) as (client, core, channel_id):
        async def broken(*args):
            raise OSError("disk full")   # the store loop turns this into StoreFailed for the handler

        core.pipeline._store_and_ingest = broken
        core.pipeline._insert_pending = broken
        body, headers = signed([sim_item("dm", "m-1")])
        resp = await client.post(f"/webhooks/simulator/{channel_id}", data=body, headers=headers)
        assert resp.status == 503 and resp.headers["Retry-After"]
        assert await counts(core) == (0, 0)


async def test_handshake_answers_the_challenge_only_with_the_right_token(database_url):
    async with client_with_channel(database_url) as (client, core, channel_id):
        ok = await client.get(f"/webhooks/simulator/{channel_id}", params={"challenge": "123"},
                              headers={"X-Simulator-Token": SECRET})
        assert ok.status == 200 and await ok.text() == "123"
        bad = await client.get(f"/webhooks/simulator/{channel_id}", params={"challenge": "123"},
                               headers={"X-Simulator-Token": "wrong"})
        assert bad.status == 403


async def test_unknown_connector_or_channel_is_404(database_url):
    async with client_with_channel(database_url) as (client, core, channel_id):
        body, headers = signed([sim_item("dm", "m-1")])
        assert (await client.post("/webhooks/nosuch", data=body, headers=headers)).status == 404
        assert (await client.post(f"/webhooks/simulator/{channel_id + 5}", data=body, headers=headers)).status == 404


async def test_one_callback_url_routes_each_entry_to_its_account(database_url):
    """Meta sends every page of an app to one URL: events go to the channel of their account id."""
    async with client_with_channel(database_url) as (client, core, first):
        second = await add_team_and_channel(core, account_id="brand-2")
        body, headers = signed([sim_item("dm", "m-2")], account_id="brand-2")
        resp = await client.post("/webhooks/simulator", data=body, headers=headers)
        assert resp.status == 200
        await core.pipeline.wait_idle()
        async with core.engine.connect() as conn:
            channel_of_message = (await conn.execute(sa.select(msg_t.c.channel_id))).scalar_one()
        assert channel_of_message == second != first


async def test_a_channel_added_by_another_process_is_found_on_first_delivery(database_url):
    async with client_with_channel(database_url) as (client, core, first):
        second = await add_team_and_channel(core, account_id="brand-3", secret="other")
        cache = await core.channels.all()
        del cache[second]                                  # as if another process had added it just now
        core.channels._loaded_at -= 2
        body, headers = signed([sim_item("dm", "m-3")], account_id="brand-3", secret="other")
        resp = await client.post(f"/webhooks/simulator/{second}", data=body, headers=headers)
        assert resp.status == 200
