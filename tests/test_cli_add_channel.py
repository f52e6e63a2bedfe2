"""`socialcrm add-channel`: test the credentials, keep secrets out of argv and the database."""

from __future__ import annotations

import sqlalchemy as sa

from socialcrm import cli, models


def run(monkeypatch, database_url, tmp_path, *args) -> int:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("SOCIALCRM_DATABASE_URL", database_url)
    monkeypatch.setenv("SOCIALCRM_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("SOCIALCRM_PUBLIC_URL", "https://care.example")
    return cli.main(["add-channel", *args])


def test_connects_a_channel_with_secrets_from_the_environment(monkeypatch, tmp_path, capsys):
    import asyncio

    from socialcrm.db import create_all, make_engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def schema():
        engine = make_engine(url)
        await create_all(engine)
        await engine.dispose()

    asyncio.run(schema())
    monkeypatch.setenv("SOCIALCRM_SECRET_BOT_TOKEN", "123:very-secret-token")
    monkeypatch.setenv("SOCIALCRM_SECRET_SECRET_TOKEN", "hook-secret")
    import respx
    import httpx

    with respx.mock(base_url="https://api.telegram.org") as tg:
        get_me = tg.route(path="/bot123:very-secret-token/getMe").mock(return_value=httpx.Response(
            200, json={"ok": True, "result": {"id": 123, "is_bot": True, "first_name": "Acme", "username": "acme_bot"}}))
        code = run(monkeypatch, url, tmp_path, "telegram", "--name", "Acme bot", "--team", "Kundeservice")
    out = capsys.readouterr()
    assert code == 0, out.err
    assert get_me.called                                   # the credentials were tested before saving
    assert "webhook URL: https://care.example/webhooks/telegram/1" in out.out
    assert b"very-secret-token" not in (tmp_path / "cli.db").read_bytes()
    assert "very-secret-token" not in out.out + out.err
    with respx.mock(base_url="https://api.telegram.org") as tg:
        tg.route().mock(return_value=httpx.Response(200, json={"ok": True, "result": {"id": 123, "is_bot": True,
                                                                                       "first_name": "Acme"}}))
        again = run(monkeypatch, url, tmp_path, "telegram", "--name", "Twice", "--team", "Kundeservice")
    assert again == 2 and "already connected" in capsys.readouterr().err


def test_rejected_credentials_store_nothing(monkeypatch, tmp_path, capsys):
    import asyncio

    import httpx
    import respx

    from socialcrm.db import create_all, make_engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def schema_and_count() -> int:
        engine = make_engine(url)
        await create_all(engine)
        async with engine.connect() as conn:
            n = (await conn.execute(sa.select(sa.func.count()).select_from(models.Channel.__table__))).scalar_one()
        await engine.dispose()
        return n

    asyncio.run(schema_and_count())
    monkeypatch.setenv("SOCIALCRM_SECRET_BOT_TOKEN", "123:wrong")
    monkeypatch.setenv("SOCIALCRM_SECRET_SECRET_TOKEN", "hook-secret")
    with respx.mock(base_url="https://api.telegram.org") as tg:
        tg.route().mock(return_value=httpx.Response(401, json={"ok": False, "error_code": 401,
                                                                "description": "Unauthorized"}))
        code = run(monkeypatch, url, tmp_path, "telegram", "--name", "Acme bot", "--team", "Kundeservice")
    err = capsys.readouterr().err
    assert code == 2 and "refused the credentials" in err and "123:wrong" not in err
    assert asyncio.run(schema_and_count()) == 0
