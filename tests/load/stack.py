"""Real processes on loopback for the load tests: a throwaway PostgreSQL database, several
`socialcrm serve` processes on it, the fake platform, and signed simulator deliveries.

Every wait is bounded by a deadline; every process is stopped by whoever started it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet

from tests.processes import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SECRET, ACCOUNT = "load-webhook-secret", "load-brand"
KEY = Fernet.generate_key().decode()


def run_async(coro: Any) -> Any:
    """Run a coroutine from sync test code (each call its own loop)."""
    return asyncio.run(coro)


@contextmanager
def pg_database() -> Iterator[str]:
    """A new database with the schema on SOCIALCRM_TEST_POSTGRES_URL's server, dropped afterwards."""
    from socialcrm.db import create_all, make_engine

    admin_url = os.environ["SOCIALCRM_TEST_POSTGRES_URL"]
    name = f"socialcrm_load_{uuid.uuid4().hex[:10]}"
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"

    async def admin(sql: str) -> None:
        engine = make_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        async with engine.connect() as conn:
            await conn.execute(sa.text(sql))
        await engine.dispose()

    async def schema() -> None:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        await create_all(engine)
        await engine.dispose()

    run_async(admin(f'CREATE DATABASE "{name}"'))
    try:
        run_async(schema())
        yield url
    finally:
        run_async(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))




@dataclass
class Proc:
    """One subprocess on a fixed loopback port, restartable after a kill."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    tmp: Path
    ready: str = "/healthz"
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.tmp / f"{self.name}.log"

    def start(self) -> Proc:
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_http(self.base + self.ready, self.proc, self.log)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or the OOM killer takes the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def processes(*procs: Proc) -> Iterator[list[Proc]]:
    try:
        for p in procs:
            p.start()
        yield list(procs)
    finally:
        for p in reversed(procs):
            p.stop()


def server(db_url: str, tmp: Path, name: str, *, scheduler: bool = False, port: int | None = None) -> Proc:
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALCRM_")}
    env.update(SOCIALCRM_DATABASE_URL=db_url, SOCIALCRM_SECRET_KEY=KEY, SOCIALCRM_DATA_DIR=str(tmp),
               SOCIALCRM_RUN_SCHEDULER="true" if scheduler else "false", SOCIALCRM_LOG_LEVEL="WARNING",
               SOCIALCRM_PUBLIC_URL=f"http://{HOST}:{port}", SOCIALCRM_OUTBOX_INTERVAL_SECONDS="0.5",
               PYTHONPATH=str(ROOT))
    return Proc(name, [sys.executable, "-m", "socialcrm", "serve", "--host", HOST, "--port", str(port)],
                env, port, tmp)


def fake_platform(tmp: Path, *args: str) -> Proc:
    port = free_port()
    return Proc("platform", [sys.executable, str(ROOT / "tests/load/fake_platform.py"), "--port", str(port), *args],
                dict(os.environ), port, tmp)


def platform_state(platform: Proc) -> dict[str, Any]:
    with urllib.request.urlopen(platform.base + "/_state", timeout=10) as resp:
        return json.loads(resp.read())


def platform_post(platform: Proc, path: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(platform.base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10):
        pass


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"not within {timeout:g} s: {what}")


# -- the database side ------------------------------------------------------------------------------

async def add_channel(db_url: str, connector: str, name: str, settings: dict[str, Any], team: str = "Care") -> int:
    from socialcrm.channels import create_channel
    from socialcrm.db import make_engine
    from socialcrm.registry import Registry
    from socialcrm.users import ensure_team
    from socialcrm.vault import Vault

    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        async with engine.begin() as conn:
            team_id = await ensure_team(conn, team)
        return await create_channel(engine, Registry.from_entry_points(), Vault([KEY.encode()]), connector=connector,
                                    name=name, team_id=team_id, settings=settings)
    finally:
        await engine.dispose()


def simulator_channel(db_url: str, api_base_url: str = "http://127.0.0.1:9", token: str = "unused",
                      account: str = ACCOUNT) -> int:
    return run_async(add_channel(db_url, "simulator", f"Load {account}", {
        "account_id": account, "webhook_secret": SECRET, "api_token": token, "api_base_url": api_base_url}))


async def scalar(db_url: str, query: Any) -> Any:
    from socialcrm.db import make_engine

    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(query)).all()
    finally:
        await engine.dispose()


def rows(db_url: str, query: Any) -> list[Any]:
    return run_async(scalar(db_url, query))


# -- deliveries -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    external_id: str
    body: bytes
    headers: dict[str, str] = field(hash=False)


def delivery(i: int, prefix: str) -> Delivery:
    """One signed simulator webhook with one DM, in the documented format (tests/support.sim_item)."""
    cust = f"{prefix}-cust-{i % 500}"
    item = {"type": "dm", "id": f"{prefix}-{i}", "timestamp": 1_764_061_200_000 + i, "text": f"melding {i}",
            "thread_id": cust, "parent_id": None, "author": {"id": cust, "name": cust, "handle": cust, "followers": None}}
    body = json.dumps({"account_id": ACCOUNT, "events": [item]}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return Delivery(item["id"], body, {"X-Simulator-Signature": signature, "Content-Type": "application/json"})


def burst(unique: int, duplicates: int, prefix: str, seed: int = 8) -> list[Delivery]:
    """`unique` events, `duplicates` extra copies of random ones, shuffled: redeliveries mixed in."""
    import random

    rng = random.Random(seed)
    events = [delivery(i, prefix) for i in range(unique)]
    out = events + [rng.choice(events) for _ in range(duplicates)]
    rng.shuffle(out)
    return out


async def send_all(deliveries: list[Delivery], urls: list[str], concurrency: int, deadline_s: float,
                   on_progress: Callable[[int], None] | None = None) -> list[tuple[Delivery, int]]:
    """POST each delivery to urls[i % len(urls)] with `concurrency` in flight; (delivery, status) each,
    status 0 when no answer came (connection refused or reset, timeout)."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results: list[tuple[Delivery, int]] = []
    queue = list(enumerate(deliveries))
    stop_at = time.monotonic() + deadline_s

    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(20.0, connect=3.0)) as client:
        async def worker() -> None:
            while queue and time.monotonic() < stop_at:
                i, d = queue.pop()
                try:
                    resp = await client.post(urls[i % len(urls)], content=d.body, headers=d.headers)
                    status = resp.status_code
                except httpx.HTTPError:
                    status = 0
                results.append((d, status))
                if on_progress is not None:
                    on_progress(len(results))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


# -- replies ----------------------------------------------------------------------------------------

async def queue_replies(db_url: str, channel_id: int, n: int, customer: Callable[[int], str],
                        public: bool = False, text: str = "svar", queued_at: list[float] | None = None) -> list[int]:
    """n customers each write once on the channel, and an agent answers each: n queued replies
    (`queued_at` gets the time.time() each one was committed)."""
    from socialcrm import ingest, replies
    from socialcrm.config import Settings
    from socialcrm.connector import Author, NormalizedEvent
    from socialcrm.core import Core
    from socialcrm.models import Conversation, User, utcnow
    from socialcrm.registry import Registry
    from socialcrm.users import create_user

    core = Core.create(Settings(database_url=db_url, secret_key=KEY, run_scheduler=False),
                       registry=Registry.from_entry_points())
    try:
        channel = await core.channels.get(channel_id)
        assert channel is not None
        now = utcnow()
        events = [NormalizedEvent(kind="comment" if public else "message", public=public,
                                  external_id=f"{customer(i)}:1", thread_external_id=f"{customer(i)}-post" if public
                                  else customer(i), author=Author(customer(i), customer(i)), created_at=now,
                                  text="hei") for i in range(n)]
        async with core.engine.begin() as conn:
            await ingest.apply(conn, channel.info, events)
            agent = await conn.scalar(sa.select(User.__table__.c.id).where(User.__table__.c.username == "agent"))
            conv_t = Conversation.__table__
            conversations = (await conn.execute(sa.select(conv_t.c.id).where(conv_t.c.channel_id == channel_id)
                                                .order_by(conv_t.c.id))).scalars().all()
        if agent is None:
            agent = (await create_user(core.engine, "agent", "correct horse battery", "agent", "Agent", ["Care"])).id
        ids = []
        for i, conv in enumerate(conversations[-n:]):
            ids.append(await replies.compose(core, conv, agent, f"{text} {i}"))
            if queued_at is not None:
                queued_at.append(time.time())
        return ids
    finally:
        await core.stop()


def outbox_statuses(db_url: str, message_ids: list[int]) -> Counter[str]:
    from socialcrm.models import OutboxEntry

    out_t = OutboxEntry.__table__
    return Counter(s for (s,) in rows(db_url, sa.select(out_t.c.status).where(out_t.c.message_id.in_(message_ids))))


def whatsapp_settings(base: str, phone: str) -> dict[str, Any]:
    return {"app_secret": "load-app-secret", "verify_token": "load-verify", "access_token": f"tok-{phone}",
            "phone_number_id": phone, "api_base_url": base}


def telegram_settings(base: str, bot: str) -> dict[str, Any]:
    return {"bot_token": bot, "secret_token": "load-telegram-secret", "api_base_url": base}
