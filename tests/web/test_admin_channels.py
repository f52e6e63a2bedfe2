"""Admin channel pages: only admins, a form from the connector's Settings, test before save,
secrets write-only, pause/resume, duplicate accounts refused, the receipts log and replay."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import respx
import sqlalchemy as sa

from socialcrm import models
from socialcrm.users import create_user
from tests.web.conftest import PASSWORD, SignIn, World

SIM_API = "http://sim-admin.test"
GOOD_TOKEN = "right-api-token-4821"
WEBHOOK_SECRET = "hook-secret-abcdef-9z7q"
channel_t = models.Channel.__table__
receipt_t = models.Receipt.__table__


@pytest.fixture
async def admin(world: World, signed_in: SignIn):
    await create_user(world.core.engine, "admin", PASSWORD, "admin", "Ada Admin")
    return await signed_in("admin")


def platform(router: respx.MockRouter) -> respx.Route:
    """GET /api/me: 200 for the right bearer token, 401 for any other."""
    def me(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") == f"Bearer {GOOD_TOKEN}":
            return httpx.Response(200, json={"id": "acme", "name": "Acme"})
        return httpx.Response(401, json={"error": "invalid token"})
    return router.get("/api/me").mock(side_effect=me)


def new_channel_form(world: World, token: str, account: str = "acme", name: str = "Acme Sim") -> dict[str, str]:
    return {"connector": "simulator", "name": name, "team_id": "1", "account_id": account,
            "webhook_secret": WEBHOOK_SECRET, "api_token": token, "api_base_url": SIM_API}


async def channel_count(world: World) -> int:
    async with world.core.engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(channel_t))


@pytest.mark.parametrize("path", ["/admin/channels", "/admin/channels/new?connector=simulator",
                                  "/admin/health", "/admin/receipts", "/admin/channels/1"])
@pytest.mark.parametrize("user", ["agent", "lead"])
async def test_non_admins_are_refused(signed_in: SignIn, user: str, path: str) -> None:
    b = await signed_in(user)
    resp, _ = await b.get(path)
    assert resp.status == 403


async def test_non_admins_cannot_pause_a_channel(signed_in: SignIn, world: World) -> None:
    b = await signed_in("lead")
    resp, _ = await b.post(f"/admin/channels/{world.care_channel}/status", {"action": "pause"})
    assert resp.status == 403
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(channel_t.c.status).where(channel_t.c.id == world.care_channel)) == "active"


async def test_list_shows_channels_with_team_and_state(admin, world: World) -> None:
    resp, text = await admin.get("/admin/channels")
    assert resp.status == 200
    assert "Sim brand" in text and "Sim brand-2" in text and "Care" in text and "active" in text


async def test_the_form_comes_from_the_connectors_settings(admin) -> None:
    resp, text = await admin.get("/admin/channels/new?connector=simulator")
    assert resp.status == 200
    assert re.search(r'name="api_token" type="password"', text)
    assert re.search(r'name="webhook_secret" type="password"', text)
    assert re.search(r'name="account_id" value=""', text)
    assert 'value="http://127.0.0.1:8090"' in text          # the declared default
    assert "Bearer token for the platform API" in text      # the description as help text
    assert '<option value="1"' in text and ">Care</option>" in text


async def test_a_wrong_token_is_refused_and_nothing_is_stored(admin, world: World) -> None:
    before = await channel_count(world)
    with respx.mock(base_url=SIM_API) as router:
        me = platform(router)
        resp, text = await admin.post("/admin/channels/new", new_channel_form(world, "wrong-token-0000"))
    assert me.called
    assert resp.status == 422
    assert "The platform refused these credentials" in text
    assert "wrong-token-0000" not in text and WEBHOOK_SECRET not in text
    assert 'value="acme"' in text                          # non-secret fields come back
    assert await channel_count(world) == before


async def test_invalid_settings_are_named_without_calling_the_platform(admin, world: World) -> None:
    form = new_channel_form(world, GOOD_TOKEN) | {"account_id": ""}
    with respx.mock(base_url=SIM_API, assert_all_called=False) as router:
        me = platform(router)
        resp, text = await admin.post("/admin/channels/new", form)
    assert resp.status == 422 and not me.called
    assert "account_id" in text and GOOD_TOKEN not in text


async def test_unreachable_platform_is_said_in_words(admin, world: World) -> None:
    with respx.mock(base_url=SIM_API) as router:
        router.get("/api/me").mock(side_effect=httpx.ConnectError("refused"))
        resp, text = await admin.post("/admin/channels/new", new_channel_form(world, GOOD_TOKEN))
    assert resp.status == 422 and "Could not reach the platform" in text


async def test_the_right_token_stores_the_channel_and_shows_only_the_last_4(admin, world: World) -> None:
    with respx.mock(base_url=SIM_API) as router:
        platform(router)
        resp, _ = await admin.post("/admin/channels/new", new_channel_form(world, GOOD_TOKEN))
    assert resp.status == 303
    location = resp.headers["Location"]
    channel_id = int(location.rsplit("/", 1)[1])
    _, page = await admin.get(location)
    assert f"/webhooks/simulator/{channel_id}" in page
    assert world.core.settings.public_url.rstrip("/") in page
    assert "•••• 4821" in page and "•••• 9z7q" in page
    assert GOOD_TOKEN not in page and WEBHOOK_SECRET not in page
    assert "connectors/simulator/README.md" in page
    async with world.core.engine.connect() as conn:
        row = (await conn.execute(sa.select(channel_t).where(channel_t.c.id == channel_id))).one()
    assert row.account_id == "acme" and row.status == "active"
    assert GOOD_TOKEN not in json.dumps(row.settings) and GOOD_TOKEN not in row.secrets_encrypted
    loaded = await world.core.channels.get(channel_id)
    assert loaded is not None and loaded.connector.settings.api_token.get_secret_value() == GOOD_TOKEN


async def test_the_same_account_cannot_be_connected_twice(admin, world: World) -> None:
    before = await channel_count(world)
    with respx.mock(base_url=SIM_API) as router:
        platform(router)
        resp, text = await admin.post("/admin/channels/new", new_channel_form(world, GOOD_TOKEN, account="brand"))
    assert resp.status == 409
    assert "This account is already connected" in text
    assert await channel_count(world) == before


async def test_pause_and_resume(admin, world: World) -> None:
    path = f"/admin/channels/{world.care_channel}"
    await admin.get(path)
    resp, _ = await admin.post(f"{path}/status", {"action": "pause"})
    assert resp.status == 303
    _, page = await admin.get(path)
    assert "paused" in page and ">Resume</button>" in page
    assert await world.core.channels.for_connector("simulator") != []            # brand-2 still active
    assert all(c.id != world.care_channel for c in await world.core.channels.for_connector("simulator"))
    resp, _ = await admin.post(f"{path}/status", {"action": "resume"})
    assert resp.status == 303
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(channel_t.c.status).where(channel_t.c.id == world.care_channel)) == "active"


async def test_no_register_button_for_a_connector_without_set_webhook(admin, world: World) -> None:
    _, page = await admin.get(f"/admin/channels/{world.care_channel}")
    assert "Register webhook" not in page
    resp, _ = await admin.post(f"/admin/channels/{world.care_channel}/webhook")
    assert resp.status == 422


async def _failed_receipt(world: World) -> int:
    item = {"type": "dm", "id": "replayed-1", "timestamp": 1795600000000, "text": "Hjelp, pakken min",
            "thread_id": "cust-9", "parent_id": None,
            "author": {"id": "cust-9", "name": "Nora", "handle": "nora", "followers": None}}
    body = json.dumps({"account_id": "brand", "events": [item]}).encode()
    async with world.core.engine.begin() as conn:
        return (await conn.execute(receipt_t.insert().values(
            connector="simulator", channel_id=world.care_channel, received_at=models.utcnow(), headers={},
            body=body, status="failed", events=1, error="database was locked",
        ).returning(receipt_t.c.id))).scalar_one()


async def test_receipts_list_a_failed_delivery_and_replay_ingests_it(admin, world: World) -> None:
    receipt_id = await _failed_receipt(world)
    resp, page = await admin.get("/admin/receipts?status=failed")
    assert resp.status == 200
    assert f'id="receipt-{receipt_id}"' in page and "database was locked" in page and ">Replay</button>" in page
    resp, _ = await admin.post(f"/admin/receipts/{receipt_id}/replay", {"status": "failed"})
    assert resp.status == 303 and resp.headers["Location"] == "/admin/receipts?status=failed"
    async with world.core.engine.connect() as conn:
        status = await conn.scalar(sa.select(receipt_t.c.status).where(receipt_t.c.id == receipt_id))
        text = await conn.scalar(sa.select(models.Message.__table__.c.text)
                                 .where(models.Message.__table__.c.external_id == "replayed-1"))
    assert status == "processed" and text == "Hjelp, pakken min"
    _, page = await admin.get("/admin/receipts?status=failed")
    assert f'id="receipt-{receipt_id}"' not in page


async def test_health_page_shows_each_channel_and_a_paused_warning(admin, world: World) -> None:
    await admin.get(f"/admin/channels/{world.care_channel}")
    await admin.post(f"/admin/channels/{world.care_channel}/status", {"action": "pause"})
    resp, page = await admin.get("/admin/health")
    assert resp.status == 200
    assert f'id="health-{world.care_channel}"' in page and f'id="health-{world.other_channel}"' in page
    assert "Paused: no events are fetched" in page


async def test_admins_see_the_nav_link_and_agents_do_not(admin, signed_in: SignIn) -> None:
    _, page = await admin.get("/")
    assert 'href="/admin/channels"' in page
    agent = await signed_in("agent")
    _, page = await agent.get("/")
    assert 'href="/admin/channels"' not in page
