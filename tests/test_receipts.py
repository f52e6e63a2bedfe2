"""Receipts: acknowledged means stored; stored means ingested eventually, after crashes too."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from connectors.simulator import SimulatorConnector
from socialcrm import models
from socialcrm.connector import WebhookRequest
from socialcrm.errors import TransientError
from socialcrm.models import utcnow
from tests.support import add_team_and_channel, running_core, signed, sim_item

receipt_t, msg_t = models.Receipt.__table__, models.Message.__table__


class FlakyFetch(SimulatorConnector):
    """Like Instagram mentions: the webhook carries ids only and the text must be fetched."""

    key = "flaky"
    failures = 1

    async def hydrate(self, events):
        if FlakyFetch.failures:
            FlakyFetch.failures -= 1
            raise TransientError("platform did not answer the fetch")
        for event in events:
            event.text = f"fetched: {event.text}"
        return events


async def state(core):
    async with core.engine.connect() as conn:
        receipt = (await conn.execute(sa.select(receipt_t.c.status, receipt_t.c.error))).one()
        texts = (await conn.execute(sa.select(msg_t.c.text))).scalars().all()
    return receipt, texts


async def test_a_failed_fetch_keeps_the_receipt_pending_until_the_sweep_succeeds(database_url):
    FlakyFetch.failures = 1
    async with running_core(database_url, connectors=(FlakyFetch,)) as core:
        channel = await core.channels.get(await add_team_and_channel(core, connector="flaky"))
        body, headers = signed([sim_item("post", "p-1", text="@brand hjelp")])
        req = WebhookRequest.build("POST", "/", headers, {}, body)
        await core.pipeline.submit(channel, req, channel.connector.parse(req))
        await core.pipeline.wait_idle()
        receipt, texts = await state(core)
        assert receipt.status == "pending" and "will retry" in receipt.error and texts == []
        assert await core.pipeline.sweep(older_than=timedelta(0)) == 1
        await core.pipeline.wait_idle()
        receipt, texts = await state(core)
        assert receipt.status == "processed" and texts == ["fetched: @brand hjelp"]


async def test_receipts_stored_before_a_crash_are_ingested_at_the_next_start(database_url):
    async with running_core(database_url) as core:
        channel_id = await add_team_and_channel(core)
    body, headers = signed([sim_item("dm", "m-1", text="lagret før krasjet")])
    async with running_core(database_url) as core:          # the process that crashed stored only this:
        async with core.engine.begin() as conn:
            await conn.execute(receipt_t.insert().values(
                connector="simulator", channel_id=channel_id, received_at=utcnow(), headers=headers, body=body,
                status="pending", events=1, error=""))
    async with running_core(database_url) as core:          # the restart
        await core.pipeline.wait_idle()
        receipt, texts = await state(core)
    assert receipt.status == "processed" and texts == ["lagret før krasjet"]


async def test_one_poisoned_delivery_is_acknowledged_kept_and_never_blocks_the_others(database_url, monkeypatch):
    import asyncio

    from socialcrm import receipts

    real_apply = receipts.ingest.apply_sync

    def apply(conn, channel, events, now=None):
        if any(e.external_id == "poison" for e in events):
            raise ValueError("a bug in ingest")
        return real_apply(conn, channel, events, now)

    monkeypatch.setattr(receipts.ingest, "apply_sync", apply)
    async with running_core(database_url) as core:
        channel = await core.channels.get(await add_team_and_channel(core))
        requests = []
        for item_id in ("ok-1", "poison", "ok-2"):
            body, headers = signed([sim_item("dm", item_id, author=f"c-{item_id}")])
            requests.append(WebhookRequest.build("POST", "/", headers, {}, body))
        await asyncio.gather(*(core.pipeline.submit(channel, r, channel.connector.parse(r)) for r in requests))
        await core.pipeline.wait_idle()
        async with core.engine.connect() as conn:
            statuses = sorted((await conn.execute(sa.select(receipt_t.c.status))).scalars())
            stored = sorted((await conn.execute(sa.select(msg_t.c.external_id))).scalars())
    assert statuses == ["failed", "processed", "processed"]     # kept, replayable after a fix
    assert stored == ["ok-1", "ok-2"]
