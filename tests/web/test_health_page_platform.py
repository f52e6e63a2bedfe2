"""The health page over HTTP: the platform's view of a channel's access, and rejected webhook
deliveries counted by the webhook endpoint (nothing of them stored)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.simulator import SimulatorConnector
from socialcrm import models
from socialcrm.errors import AuthFailed
from socialcrm.models import utcnow
from socialcrm.users import create_user
from tests.support import signed, sim_item
from tests.web.conftest import PASSWORD, SignIn, World


@pytest.fixture
async def admin(world: World, signed_in: SignIn):
    await create_user(world.core.engine, "admin", PASSWORD, "admin", "Ada Admin")
    return await signed_in("admin")


async def test_token_expiry_and_lost_subscription_are_shown(admin, world: World, monkeypatch) -> None:
    expires = utcnow() + timedelta(days=2, hours=1)

    async def says(self: Any) -> dict[str, Any]:
        return {"token_valid": True, "token_expires_at": expires, "scopes": ["pages_messaging"],
                "subscribed": False, "subscribed_fields": []}

    monkeypatch.setattr(SimulatorConnector, "platform_health", says, raising=False)
    resp, page = await admin.get("/admin/health")
    assert resp.status == 200
    assert "The token expires in 2 days" in page
    assert "not subscribed to this page&#39;s webhooks (Meta stops sending)" in page
    assert "pages_messaging" in page and "not subscribed" in page


async def test_a_platform_that_rejects_the_token_is_a_warning_not_a_500(admin, world: World, monkeypatch) -> None:
    async def refuses(self: Any) -> dict[str, Any]:
        raise AuthFailed("Meta rejected the access token (190): Error validating access token")

    monkeypatch.setattr(SimulatorConnector, "platform_health", refuses, raising=False)
    resp, page = await admin.get("/admin/health")
    assert resp.status == 200
    assert "The token is no longer valid: Meta rejected the access token (190)" in page


async def test_rejected_deliveries_are_counted_and_stored_nowhere(admin, world: World, server) -> None:
    receipts = models.Receipt.__table__
    body, headers = signed([sim_item("dm", "m-1")], secret="wrong")
    for _ in range(11):
        resp = await admin.session.post(f"/webhooks/simulator/{world.care_channel}", data=body, headers=headers)
        assert resp.status == 401
    bad, bad_headers = signed([{"type": "dm", "timestamp": 1}])           # malformed: no id
    resp = await admin.session.post("/webhooks/simulator", data=bad, headers=bad_headers)
    assert resp.status == 400
    _, page = await admin.get("/admin/health")
    assert "Rejected in the last hour (this process)" in page
    assert "11 at this channel's URL, 1 at /webhooks/simulator" in page
    assert "11 webhook deliveries to this channel&#39;s URL were rejected" in page
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(receipts)) == 0
