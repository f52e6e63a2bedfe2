"""`socialcrm check`: database, migrations and each channel, with an exit code that means something."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httpx
import respx
import sqlalchemy as sa

from connectors.simulator import SimulatorConnector
from socialcrm import cli, models
from socialcrm.channels import create_channel
from socialcrm.checks import check_channels, check_database
from socialcrm.db import create_all, make_engine
from socialcrm.migrate import head_revision
from socialcrm.registry import Registry
from socialcrm.users import ensure_team
from socialcrm.vault import Vault
from tests.support import PLATFORM, SECRET, TEST_KEY, TOKEN

SIM_SETTINGS = {"account_id": "brand", "webhook_secret": SECRET, "api_token": TOKEN, "api_base_url": PLATFORM}


class HookedConnector(SimulatorConnector):
    """A connector that can report its webhook state, as Telegram's getWebhookInfo does."""

    key = "hooked"
    info: ClassVar[dict[str, Any]] = {}

    async def webhook_info(self) -> dict[str, Any]:
        return self.info


async def stamp(engine, revision: str | None) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        await conn.execute(sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": revision})


async def add_channel(engine, connector: str = "simulator", account_id: str = "brand") -> int:
    async with engine.begin() as conn:
        team_id = await ensure_team(conn, "Care")
    registry = Registry([SimulatorConnector, HookedConnector])
    return await create_channel(engine, registry, Vault([TEST_KEY.encode()]), connector=connector,
                                name=f"Sim {account_id}", team_id=team_id,
                                settings={**SIM_SETTINGS, "account_id": account_id})


def make_database(tmp_path, migrated: bool = True) -> str:
    """A file database with the schema, optionally stamped at head, and one simulator channel."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'check.db'}"

    async def build() -> None:
        engine = make_engine(url)
        await create_all(engine)
        if migrated:
            await stamp(engine, head_revision())
        await add_channel(engine)
        await engine.dispose()

    asyncio.run(build())
    return url


def run_check(monkeypatch, url: str, me: httpx.Response) -> tuple[int, respx.Route]:
    monkeypatch.setenv("SOCIALCRM_DATABASE_URL", url)
    monkeypatch.setenv("SOCIALCRM_SECRET_KEY", TEST_KEY)
    with respx.mock(assert_all_called=False) as platform:
        route = platform.get(f"{PLATFORM}/api/me").mock(return_value=me)
        code = cli.main(["check"])
    return code, route


def test_rejected_token_exits_1_and_names_the_channel(monkeypatch, tmp_path, capsys) -> None:
    url = make_database(tmp_path)
    code, route = run_check(monkeypatch, url, httpx.Response(401, json={"error": "invalid token"}))
    out = capsys.readouterr().out
    assert code == 1 and route.called
    assert "FAIL channel 1 (Sim brand, simulator): needs re-authorisation" in out
    assert TOKEN not in out and TEST_KEY not in out


def test_everything_fine_exits_0(monkeypatch, tmp_path, capsys) -> None:
    url = make_database(tmp_path)
    code, route = run_check(monkeypatch, url, httpx.Response(200, json={"id": "brand"}))
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and route.called
    assert lines == ["ok   database: ok", "ok   migrations: current",
                     "ok   channel 1 (Sim brand, simulator): credentials accepted"]


def test_platform_down_is_cannot_connect(monkeypatch, tmp_path, capsys) -> None:
    url = make_database(tmp_path)
    code, _ = run_check(monkeypatch, url, httpx.Response(503, text="maintenance"))
    assert code == 1
    assert "FAIL channel 1 (Sim brand, simulator): cannot connect" in capsys.readouterr().out


def test_unapplied_migrations_need_attention(monkeypatch, tmp_path, capsys) -> None:
    url = make_database(tmp_path, migrated=False)
    code, _ = run_check(monkeypatch, url, httpx.Response(200, json={"id": "brand"}))
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL migrations: not applied" in out
    assert "ok   channel 1" in out   # the channels are still checked


async def test_unreachable_database(tmp_path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    try:
        findings = await check_database(engine)
    finally:
        await engine.dispose()
    assert [(f.subject, f.ok) for f in findings] == [("database", False)]   # no migration check on top
    assert findings[0].line() == "FAIL database: unreachable (OperationalError)"


# -- the findings themselves, on both databases -----------------------------------------------

async def findings_for(engine, registry: Registry) -> list[str]:
    async with httpx.AsyncClient() as http:
        return [f.line() for f in await check_channels(engine, registry, Vault([TEST_KEY.encode()]), http)]


@respx.mock
async def test_webhook_error_reported_by_the_platform(engine, monkeypatch) -> None:
    respx.get(f"{PLATFORM}/api/me").mock(return_value=httpx.Response(200, json={}))
    channel_id = await add_channel(engine, "hooked")
    monkeypatch.setattr(HookedConnector, "info", {"url": "https://care.example/webhooks/hooked/1",
                                                  "pending_update_count": 42,
                                                  "last_error_message": "Wrong response from the webhook: 502"})
    lines = await findings_for(engine, Registry([SimulatorConnector, HookedConnector]))
    assert lines == [f"ok   channel {channel_id} (Sim brand, hooked): credentials accepted",
                     (f"FAIL channel {channel_id} (Sim brand, hooked): webhook: 42 pending, "
                      "last error: Wrong response from the webhook: 502")]


@respx.mock
async def test_healthy_webhook_and_unregistered_one(engine, monkeypatch) -> None:
    respx.get(f"{PLATFORM}/api/me").mock(return_value=httpx.Response(200, json={}))
    await add_channel(engine, "hooked")
    registry = Registry([SimulatorConnector, HookedConnector])
    monkeypatch.setattr(HookedConnector, "info", {"url": "https://x/", "pending_update_count": 0})
    assert (await findings_for(engine, registry))[-1].endswith("webhook: 0 pending, no error")
    assert (await findings_for(engine, registry))[-1].startswith("ok   ")
    monkeypatch.setattr(HookedConnector, "info", {"url": "", "pending_update_count": 3})
    assert "FAIL" in (last := (await findings_for(engine, registry))[-1]) and "not registered" in last


async def test_a_connector_that_cannot_load_is_a_problem(engine) -> None:
    channel_id = await add_channel(engine, "hooked")
    lines = await findings_for(engine, Registry([SimulatorConnector]))   # "hooked" is not installed
    assert lines == [(f"FAIL channel {channel_id} (Sim brand, hooked): connector cannot load: "
                      "no connector 'hooked' is installed")]


async def test_a_wrong_secret_key_is_a_problem_without_quoting_secrets(engine) -> None:
    from cryptography.fernet import Fernet

    await add_channel(engine)
    async with httpx.AsyncClient() as http:
        findings = await check_channels(engine, Registry([SimulatorConnector]), Vault([Fernet.generate_key()]), http)
    assert len(findings) == 1 and not findings[0].ok
    assert "connector cannot load: InvalidToken" in findings[0].message


async def test_paused_channels_are_not_called(engine) -> None:
    channel_id = await add_channel(engine)
    async with engine.begin() as conn:
        await conn.execute(models.Channel.__table__.update().values(status="paused"))
    with respx.mock:   # any platform call would fail: none is mocked
        lines = await findings_for(engine, Registry([SimulatorConnector]))
    assert lines == [f"ok   channel {channel_id} (Sim brand, simulator): paused: not checked"]


async def test_database_findings_on_a_fresh_schema(engine) -> None:
    findings = await check_database(engine)
    assert [(f.subject, f.ok) for f in findings] == [("database", True), ("migrations", False)]


def test_health_warnings_are_printed_and_exit_1(monkeypatch, tmp_path, capsys) -> None:
    """The credentials are accepted now, but the channel is marked for re-authorisation: the same
    warning the admin pages show makes `socialcrm check` fail."""
    url = make_database(tmp_path)

    async def mark() -> None:
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.execute(models.Channel.__table__.update().values(status="needs_reauth",
                                                                       status_reason="token revoked"))
        await engine.dispose()

    asyncio.run(mark())
    code, route = run_check(monkeypatch, url, httpx.Response(200, json={"id": "brand"}))
    out = capsys.readouterr().out
    assert code == 1 and route.called
    assert "FAIL health: Channel Sim brand: Needs re-authorisation: token revoked" in out


async def test_stopped_channels_give_no_health_warnings(engine) -> None:
    from socialcrm.checks import health_warnings

    await add_channel(engine)
    async with engine.begin() as conn:
        await conn.execute(models.Channel.__table__.update().values(status="needs_reauth"))
    assert [w.split(":")[0] for w in await health_warnings(engine)] == ["Channel Sim brand"]
    for status in ("paused", "removed"):
        async with engine.begin() as conn:
            await conn.execute(models.Channel.__table__.update().values(status=status))
        assert await health_warnings(engine) == []
        with respx.mock:   # not called either
            lines = await findings_for(engine, Registry([SimulatorConnector]))
        assert lines[0].endswith(f"{status}: not checked")
