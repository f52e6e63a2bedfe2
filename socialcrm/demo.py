"""`socialcrm demo`: a live inbox in one command, fed by the simulated platform over real HTTP."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys

import sqlalchemy as sa
from aiohttp import web

from socialcrm import models
from socialcrm.channels import create_channel
from socialcrm.config import Settings
from socialcrm.db import make_engine
from socialcrm.migrate import upgrade
from socialcrm.registry import Registry
from socialcrm.users import create_user, hash_password
from socialcrm.vault import Vault

TEAM = "Kundeservice"
DEMO_USERS = (("admin", "admin", "Ada Admin"), ("lead", "lead", "Lars Leder"), ("agent", "agent", "Kari Nordmann"))
user_t = models.User.__table__
channel_t = models.Channel.__table__


async def _ensure_users(engine: sa.ext.asyncio.AsyncEngine) -> dict[str, str]:
    """Fresh passwords for the three demo users, printed once per demo start."""
    passwords = {}
    for username, role, name in DEMO_USERS:
        password = secrets.token_urlsafe(9)
        async with engine.begin() as conn:
            exists = (await conn.execute(sa.select(user_t.c.id).where(user_t.c.username == username))).scalar()
            if exists:
                await conn.execute(user_t.update().where(user_t.c.id == exists).values(
                    password_hash=hash_password(password), session_epoch=user_t.c.session_epoch + 1))
        if not exists:
            await create_user(engine, username, password, role, name, [TEAM])
        passwords[username] = password
    async with engine.begin() as conn:  # the agent starts online so the router assigns right away
        await conn.execute(user_t.update().where(user_t.c.username == "agent")
                           .values(online=True, online_since=models.utcnow()))
    return passwords


async def _ensure_channel(engine: sa.ext.asyncio.AsyncEngine, settings: Settings, platform_port: int) -> tuple[int, str, str]:
    vault = Vault.from_settings(settings)
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(channel_t).where(channel_t.c.connector == "simulator"))).first()
        team_id = (await conn.execute(sa.select(models.Team.__table__.c.id)
                                      .where(models.Team.__table__.c.name == TEAM))).scalar_one()
    if row is not None:
        secret = vault.decrypt(row.secrets_encrypted)
        return row.id, secret["webhook_secret"], secret["api_token"]
    webhook_secret, token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    channel_id = await create_channel(engine, Registry.from_entry_points(), vault, connector="simulator",
                                      name="Simulated brand", team_id=team_id, settings={
                                          "account_id": "brand", "webhook_secret": webhook_secret,
                                          "api_token": token, "api_base_url": f"http://127.0.0.1:{platform_port}"},
                                      csat_enabled=True)   # resolving a private conversation sends a survey link
    return channel_id, webhook_secret, token


#: Help articles and team answers for the demo brand (example.com is reserved: never a real site).
DEMO_ARTICLES = (("Returns and refunds", "https://example.com/help/returns"),
                 ("Track your order", "https://example.com/help/tracking"))
DEMO_ANSWERS = (
    ("Refund on its way", "en", "refund, returns",
     "Hi {customer_first_name}, sorry for the wait! Refunds reach your account within 5 working days. "
     "How returns work: {help:1}\n{agent_first_name}"),
    ("Hvor er pakken?", "nb", "order, tracking",
     "Hei {customer_first_name}! Du kan følge pakken din her: {help:2} Ordrenummeret står i bekreftelsen. "
     "Hilsen {agent_first_name}"),
    ("Tack för ditt tålamod", "sv", "apology",
     "Hej {customer_first_name}! Tack för ditt tålamod, vi tittar på det nu. /{agent_first_name}"),
)


async def _ensure_answers(engine: sa.ext.asyncio.AsyncEngine) -> None:
    """A few help articles and team standard answers, once (a restarted demo keeps the lead's edits)."""
    article_t, answer_t, now = models.HelpArticle.__table__, models.StandardAnswer.__table__, models.utcnow()
    async with engine.begin() as conn:
        if await conn.scalar(sa.select(sa.func.count()).select_from(article_t)):
            return
        team_id = await conn.scalar(sa.select(models.Team.__table__.c.id).where(models.Team.__table__.c.name == TEAM))
        ids = [(await conn.execute(article_t.insert().values(title=title, url=url, active=True, created_at=now,
                                                             updated_at=now).returning(article_t.c.id))).scalar_one()
               for title, url in DEMO_ARTICLES]
        for title, language, tags, body in DEMO_ANSWERS:
            body = body.replace("{help:1}", f"{{help:{ids[0]}}}").replace("{help:2}", f"{{help:{ids[1]}}}")
            await conn.execute(answer_t.insert().values(title=title, body=body, tags=tags.replace(" ", ""),
                                                        language=language, team_id=team_id, created_at=now,
                                                        updated_at=now))


async def prepare(settings: Settings, platform_port: int) -> tuple[dict[str, str], int, str, str]:
    engine = make_engine(settings.database_url)
    try:
        passwords = await _ensure_users(engine)
        channel_id, secret, token = await _ensure_channel(engine, settings, platform_port)
        await _ensure_answers(engine)
    finally:
        await engine.dispose()
    return passwords, channel_id, secret, token


def run_demo(args: argparse.Namespace) -> int:
    from socialcrm.cli import configure_logging
    from socialcrm.web.app import create_app

    settings = Settings(port=args.port)
    configure_logging(settings)
    upgrade(settings.database_url)
    passwords, channel_id, secret, token = asyncio.run(prepare(settings, args.platform_port))
    print(f"\n  socialcrm demo on http://{settings.host}:{settings.port}\n")
    for user, password in passwords.items():
        print(f"    {user:6} {password}")
    print("\n  These passwords are shown once. Ctrl-C stops everything.\n", flush=True)
    platform = subprocess.Popen(
        [sys.executable, "-m", "connectors.simulator.platform",
         "--webhook-url", f"http://127.0.0.1:{settings.port}/webhooks/simulator/{channel_id}",
         "--account-id", "brand", "--port", str(args.platform_port), "--interval", str(args.interval)],
        env={**os.environ, "SIMULATOR_SECRET": secret, "SIMULATOR_TOKEN": token})
    try:
        web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, shutdown_timeout=5)
    finally:
        platform.terminate()
        platform.wait(timeout=10)
    return 0
