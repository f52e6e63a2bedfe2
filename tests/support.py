"""Builders shared by the core tests: events, a channel, a started Core with the simulator."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from cryptography.fernet import Fernet

from connectors.simulator import SimulatorConnector
from socialcrm.channels import create_channel
from socialcrm.config import Settings
from socialcrm.connector import Author, NormalizedEvent
from socialcrm.core import Core
from socialcrm.registry import Registry
from socialcrm.users import create_user

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
SECRET = "s3cret-webhook"
TOKEN = "tok-123"
PLATFORM = "http://platform.test"
TEST_KEY = Fernet.generate_key().decode()


def ev(kind: str, external_id: str, thread: str, *, author: str = "cust-1", public: bool = False,
       text: str = "hello", at: datetime | None = None, in_reply_to: str | None = None, is_self: bool = False,
       followers: int | None = None, target: str | None = None, detail: dict | None = None,
       name: str | None = None) -> NormalizedEvent:
    return NormalizedEvent(
        kind=kind, public=public, external_id=external_id, thread_external_id=thread,
        author=Author(external_id=author, name=name or author.title(), followers=followers, is_self=is_self),
        created_at=at or T0, text=text, in_reply_to_external_id=in_reply_to, target_external_id=target,
        detail=detail or {})


def test_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, secret_key=TEST_KEY, run_scheduler=False, **overrides)


@asynccontextmanager
async def running_core(database_url: str, connectors: tuple = (), **overrides: Any) -> AsyncIterator[Core]:
    """A started Core with the simulator connector (plus any given test connectors)."""
    core = Core.create(test_settings(database_url, **overrides),
                       registry=Registry([SimulatorConnector, *connectors]), http=httpx.AsyncClient(timeout=5))
    await core.start(run_scheduler=False)
    try:
        yield core
    finally:
        await core.stop()


async def add_team_and_channel(core: Core, team: str = "Care", account_id: str = "brand",
                               secret: str = SECRET, connector: str = "simulator") -> int:
    from socialcrm.users import ensure_team

    async with core.engine.begin() as conn:
        team_id = await ensure_team(conn, team)
    channel_id = await create_channel(core.engine, core.registry, core.vault, connector=connector,
                                      name=f"Sim {account_id}", team_id=team_id, settings={
                                          "account_id": account_id, "webhook_secret": secret,
                                          "api_token": TOKEN, "api_base_url": PLATFORM})
    core.channels.invalidate()
    return channel_id


async def add_agent(core: Core, username: str, team: str = "Care", capacity: int = 5, online: bool = True) -> int:
    from socialcrm import models
    from socialcrm.conversations import set_presence

    user = await create_user(core.engine, username, "correct horse battery", "agent", username.title(), [team])
    async with core.engine.begin() as conn:
        await conn.execute(models.User.__table__.update().where(models.User.__table__.c.id == user.id)
                           .values(capacity=capacity))
    if online:
        await set_presence(core, user.id, True)
    return user.id


def sim_item(type_: str, id_: str, *, thread: str | None = None, author: str = "cust-1", text: str = "hei",
             ms: int = 1_764_061_200_000, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    """An item in the simulator's documented webhook format (connectors/simulator/README.md)."""
    item = {"type": type_, "id": id_, "timestamp": ms, "text": text, "thread_id": thread or author,
            "parent_id": parent, "author": {"id": author, "name": author.title(), "handle": author, "followers": None}}
    item.update(extra)
    return item


def signed(items: list[dict[str, Any]], account_id: str = "brand", secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"account_id": account_id, "events": items}).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Simulator-Signature": sig, "Content-Type": "application/json"}


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
