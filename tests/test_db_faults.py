"""A database that cannot store a delivery makes the webhook answer 503 (the platform retries),
never 200 for something not stored and never 500; the service recovers by itself.

SQLite: another writer holds the lock past the busy timeout. PostgreSQL: the server is reached
through a small TCP proxy on loopback that the test cuts and restores, so the shared PostgreSQL
server the other tests use is never stopped.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from socialcrm import db, models
from socialcrm.db import create_all, make_engine
from socialcrm.web.app import create_app
from tests.support import add_team_and_channel, running_core, signed, sim_item

msg_t, receipt_t = models.Message.__table__, models.Receipt.__table__


@asynccontextmanager
async def webhook_client(url: str):
    async with running_core(url) as core:
        channel_id = await add_team_and_channel(core)
        async with TestClient(TestServer(create_app(core.settings, core))) as client:
            yield client, core, channel_id


async def post(client, channel_id: int, external_id: str) -> int:
    body, headers = signed([sim_item("dm", external_id, author=f"c-{external_id}")])
    resp = await client.post(f"/webhooks/simulator/{channel_id}", data=body, headers=headers)
    await resp.read()
    return resp.status


async def stored_ids(engine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(msg_t.c.external_id))).scalars())


# -- SQLite: locked by another writer ------------------------------------------------------------

async def test_sqlite_locked_by_another_writer_answers_503_not_500_then_recovers(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "SQLITE_BUSY_SECONDS", 0.3)
    path = tmp_path / "locked.db"
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url)
    await create_all(engine)
    await engine.dispose()
    async with webhook_client(url) as (client, core, channel_id):
        blocker = sqlite3.connect(path, timeout=0.1)
        blocker.execute("BEGIN IMMEDIATE")                 # another writer holds the lock
        try:
            resp_status = await post(client, channel_id, "m-locked")
            resp = await client.post(f"/webhooks/simulator/{channel_id}", data=b"{}", headers={})
            assert resp.status == 401                       # signature first: no database involved
        finally:
            blocker.rollback()
            blocker.close()
        assert resp_status == 503
        assert await stored_ids(core.engine) == []
        assert await post(client, channel_id, "m-locked") == 200   # the platform's retry
        await core.pipeline.wait_idle()
        assert await stored_ids(core.engine) == ["m-locked"]


# -- PostgreSQL: the connection is cut and restored ----------------------------------------------

class CuttableProxy:
    """TCP proxy on 127.0.0.1 in front of PostgreSQL; `cut()` drops every connection and refuses
    new ones until `restore()`: what clients see when PostgreSQL stops and starts again."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()                      # the same port again


def through(url: str, port: int) -> str:
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")


async def test_postgres_cut_answers_503_then_recovers_by_itself_and_loses_nothing(pg_url, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="socialcrm.live")
    proxy = CuttableProxy()
    await proxy.start()
    try:
        async with webhook_client(through(pg_url, proxy.port)) as (client, core, channel_id):
            statuses: dict[str, int] = {}
            for i in range(5):
                statuses[f"before-{i}"] = await post(client, channel_id, f"before-{i}")
            await core.pipeline.wait_idle()
            await proxy.cut()
            for i in range(5):
                if i == 3:
                    core.channels.invalidate()            # the channel list must be re-read now
                statuses[f"cut-{i}"] = await post(client, channel_id, f"cut-{i}")
            assert {s for k, s in statuses.items() if k.startswith("cut")} == {503}
            await proxy.restore()
            for i in range(5):
                statuses[f"after-{i}"] = await post(client, channel_id, f"after-{i}")
            for i in range(5):                                # the platform retries what got 503
                statuses[f"cut-{i}"] = await post(client, channel_id, f"cut-{i}")
            assert set(statuses.values()) == {200}, statuses
            await core.pipeline.wait_idle()
            await core.pipeline.sweep(older_than=timedelta(0))   # the scheduler's job: anything left pending
            await core.pipeline.wait_idle()
            assert sorted(await stored_ids(core.engine)) == sorted(statuses)   # all acknowledged, once each
            await asyncio.wait_for(core.hub.connected.wait(), 15)   # live events reconnected too
        assert "live events across processes lost" in caplog.text
        assert "live events across processes recovered" in caplog.text
    finally:
        await proxy.cut()


async def test_postgres_cut_between_store_and_ingest_keeps_the_receipt_pending(pg_url):  # noqa: F811
    """Acknowledged (stored) but not yet ingested when the database goes: the receipt stays
    pending, not failed, and the sweep ingests it once the database is back."""
    proxy = CuttableProxy()
    await proxy.start()
    try:
        async with webhook_client(through(pg_url, proxy.port)) as (client, core, channel_id):
            real_prepare = core.pipeline._prepare
            gate = asyncio.Event()

            async def cut_before_ingest(batch):
                await proxy.cut()
                gate.set()
                return await real_prepare(batch)

            core.pipeline._prepare = cut_before_ingest
            assert await post(client, channel_id, "acked") == 200
            await asyncio.wait_for(gate.wait(), 5)
            await core.pipeline.wait_idle()
            core.pipeline._prepare = real_prepare
            await proxy.restore()
            async with core.engine.connect() as conn:
                assert (await conn.execute(sa.select(receipt_t.c.status))).scalar_one() == "pending"
            assert await core.pipeline.sweep(older_than=timedelta(0)) == 1
            await core.pipeline.wait_idle()
            assert await stored_ids(core.engine) == ["acked"]
    finally:
        await proxy.cut()


@pytest.fixture(autouse=True)
def _quiet_pool_errors(caplog):
    """The cut makes SQLAlchemy's pool log tracebacks; they are the point of these tests."""
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    yield
    logging.getLogger("sqlalchemy.pool").setLevel(logging.NOTSET)
