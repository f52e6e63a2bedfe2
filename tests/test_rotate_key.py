"""`socialcrm rotate-key`: secrets re-encrypted under a new key; no plaintext secret on disk, ever."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from connectors.simulator import SimulatorConnector
from socialcrm import cli, models
from socialcrm.channels import create_channel
from socialcrm.config import Settings
from socialcrm.db import create_all, make_engine
from socialcrm.keys import read_key_file, write_key_file
from socialcrm.registry import Registry
from socialcrm.users import ensure_team
from socialcrm.vault import KEY_FILE, Vault

API_TOKEN = "sim-api-token-Zq81xKmn"
WEBHOOK_SECRET = "sim-webhook-secret-Pw55"
FERNET_KEY = re.compile(r"^[A-Za-z0-9_-]{43}=$")


def settings_for(tmp_path: Path, secret_key: str | None = None) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}", data_dir=tmp_path,
                    secret_key=secret_key)


def database_bytes(tmp_path: Path) -> bytes:
    """The database file and its WAL, as anyone with the disk (or a backup) would read them."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("keys.db*")))


def assert_no_plaintext(tmp_path: Path) -> None:
    data = database_bytes(tmp_path)
    assert data, "the database file should exist"
    assert API_TOKEN.encode() not in data and WEBHOOK_SECRET.encode() not in data


def build(settings: Settings, channels: int = 2) -> None:
    async def run() -> None:
        engine = make_engine(settings.database_url)
        await create_all(engine)
        async with engine.begin() as conn:
            team_id = await ensure_team(conn, "Care")
        for n in range(channels):
            await create_channel(engine, Registry([SimulatorConnector]), Vault.from_settings(settings),
                                 connector="simulator", name=f"Sim {n}", team_id=team_id, settings={
                                     "account_id": f"brand-{n}", "webhook_secret": WEBHOOK_SECRET,
                                     "api_token": API_TOKEN, "api_base_url": "http://platform.test"})
        await engine.dispose()

    asyncio.run(run())


def stored_tokens(settings: Settings) -> list[str]:
    async def run() -> list[str]:
        engine = make_engine(settings.database_url)
        async with engine.connect() as conn:
            rows = (await conn.scalars(sa.select(models.Channel.__table__.c.secrets_encrypted))).all()
        await engine.dispose()
        return list(rows)

    return asyncio.run(run())


def rotate(monkeypatch, settings: Settings) -> int:
    monkeypatch.setenv("SOCIALCRM_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SOCIALCRM_DATA_DIR", str(settings.data_dir))
    if settings.secret_key is None:
        monkeypatch.delenv("SOCIALCRM_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SOCIALCRM_SECRET_KEY", settings.secret_key.get_secret_value())
    return cli.main(["rotate-key"])


def assert_readable_with(key: bytes, tokens: list[str]) -> None:
    for token in tokens:
        assert Vault([key]).decrypt(token) == {"webhook_secret": WEBHOOK_SECRET, "api_token": API_TOKEN}


def test_key_file_rotation(monkeypatch, tmp_path, capsys) -> None:
    settings = settings_for(tmp_path)
    build(settings)
    old_key = read_key_file(tmp_path / KEY_FILE)[0]
    assert_no_plaintext(tmp_path)
    before = stored_tokens(settings)

    assert rotate(monkeypatch, settings) == 0

    out = capsys.readouterr().out
    new_key, kept = read_key_file(tmp_path / KEY_FILE)
    assert kept == old_key and new_key != old_key
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    after = stored_tokens(settings)
    assert len(after) == 2 and set(after).isdisjoint(before)
    assert_readable_with(new_key, after)            # the new key alone suffices
    assert Vault.from_settings(settings).decrypt(after[0])["api_token"] == API_TOKEN   # as the app loads it
    with pytest.raises(InvalidToken):
        Vault([old_key]).decrypt(after[0])          # really re-encrypted, not just re-labelled
    assert_no_plaintext(tmp_path)
    assert new_key.decode() not in out and old_key.decode() not in out   # the file holds it; never print it
    assert "2 channel(s)" in out


def test_env_key_rotation_prints_only_the_new_key(monkeypatch, tmp_path, capsys) -> None:
    old_key = Fernet.generate_key().decode()
    older_key = Fernet.generate_key().decode()
    settings = settings_for(tmp_path, secret_key=f"{old_key},{older_key}")
    build(settings)
    assert_no_plaintext(tmp_path)

    assert rotate(monkeypatch, settings) == 0

    out = capsys.readouterr().out
    printed = [line for line in out.splitlines() if FERNET_KEY.match(line)]
    assert len(printed) == 1 and out.count(printed[0]) == 1
    assert old_key not in out and older_key not in out
    assert_readable_with(printed[0].encode(), stored_tokens(settings))
    assert not (tmp_path / KEY_FILE).exists()   # an env key is never written to disk
    assert_no_plaintext(tmp_path)


def test_rotating_twice_keeps_everything_readable(monkeypatch, tmp_path, capsys) -> None:
    settings = settings_for(tmp_path)
    build(settings, channels=1)
    assert rotate(monkeypatch, settings) == 0
    assert rotate(monkeypatch, settings) == 0
    keys = read_key_file(tmp_path / KEY_FILE)
    assert len(keys) == 3 and len(set(keys)) == 3
    assert_readable_with(keys[0], stored_tokens(settings))


def test_nothing_to_rotate_without_a_key(monkeypatch, tmp_path, capsys) -> None:
    settings = settings_for(tmp_path)
    build(settings, channels=0)
    (tmp_path / KEY_FILE).unlink(missing_ok=True)
    assert rotate(monkeypatch, settings) == 2
    assert "nothing to rotate" in capsys.readouterr().err
    assert not (tmp_path / KEY_FILE).exists()


def test_the_app_still_reads_secrets_after_a_crash_midway(tmp_path) -> None:
    """The key file already lists [new, old] but the database was never re-encrypted."""
    settings = settings_for(tmp_path)
    build(settings, channels=1)
    old_key = read_key_file(tmp_path / KEY_FILE)[0]
    write_key_file(tmp_path / KEY_FILE, [Fernet.generate_key(), old_key])
    for token in stored_tokens(settings):
        assert Vault.from_settings(settings).decrypt(token)["api_token"] == API_TOKEN
