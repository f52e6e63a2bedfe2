"""Browser tests: Debian's Chromium driven by Playwright (sync API), the app in a subprocess.

Three processes talk real HTTP: the simulated platform (`python -m connectors.simulator.platform`,
it accepts replies), socialcrm (`python -m socialcrm serve`, set up with `migrate` and
`create-user`), and the browser. Customer messages arrive as signed webhooks, like in production.
No browser is ever downloaded: without /usr/bin/chromium these tests are skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.processes import free_port, wait_http

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
SECRET, TOKEN, ACCOUNT = "browser-webhook-secret", "browser-api-token", "brand"
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"browser tests need Debian's Chromium at {CHROMIUM} "
                                   "(apt-get install chromium); no browser is downloaded")
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(skip)





def run_cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "socialcrm", *args], check=False, env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"socialcrm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@dataclass
class Stack:
    base_url: str
    platform_url: str
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)
    counter: int = 0

    def deliver(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """POST a signed webhook, exactly as the platform would."""
        body = json.dumps({"account_id": ACCOUNT, "events": items}).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(f"{self.base_url}/webhooks/simulator", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Simulator-Signature": signature})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            return json.loads(resp.read())

    def item(self, type_: str, text: str, *, author: str, name: str, thread: str | None = None,
             minutes_ago: float = 0, followers: int | None = None) -> dict[str, Any]:
        self.counter += 1
        ms = int((time.time() - minutes_ago * 60) * 1000)
        return {"type": type_, "id": f"b{self.counter}-{int(time.time() * 1000)}", "timestamp": ms, "text": text,
                "thread_id": thread or author, "parent_id": None,
                "author": {"id": author, "name": name, "handle": author, "followers": followers}}

    def platform_replies(self) -> list[dict[str, Any]]:
        req = urllib.request.Request(f"{self.platform_url}/api/replies",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())


async def _create_channel(env: dict[str, str], connector: str, name: str, values: dict[str, Any]) -> int:
    import sqlalchemy as sa

    from socialcrm import models
    from socialcrm.channels import create_channel
    from socialcrm.config import Settings
    from socialcrm.db import make_engine
    from socialcrm.registry import Registry
    from socialcrm.vault import Vault

    settings = Settings(database_url=env["SOCIALCRM_DATABASE_URL"], secret_key=env["SOCIALCRM_SECRET_KEY"],
                        data_dir=env["SOCIALCRM_DATA_DIR"])
    engine = make_engine(settings.database_url)
    try:
        team = models.Team.__table__
        async with engine.connect() as conn:
            team_id = await conn.scalar(sa.select(team.c.id).where(team.c.name == "Care"))
        return await create_channel(engine, Registry.from_entry_points(), Vault.from_settings(settings),
                                    connector=connector, name=name, team_id=team_id, settings=values)
    finally:
        await engine.dispose()


def add_channel(env: dict[str, str], connector: str, name: str, values: dict[str, Any]) -> int:
    """Connect an account to team Care, as the admin UI would (in a thread: Playwright's sync API
    may own this thread's event loop); the running server finds it on its first delivery."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _create_channel(env, connector, name, values)).result()


@contextmanager
def fake_graph(tmp: Path) -> Iterator[str]:
    """tests/browser/fake_graph.py on a free loopback port; yields its base URL."""
    port, log = free_port(), tmp / "graph.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests/browser/fake_graph.py"), "--port", str(port)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_requests", proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


@contextmanager
def running_stack(tmp: Path) -> Iterator[Stack]:
    """Platform and socialcrm in subprocesses, on free ports, with agent 'agent' in team Care."""
    port, platform_port = free_port(), free_port()
    env = {**os.environ,
           "SOCIALCRM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'socialcrm.db'}",
           "SOCIALCRM_SECRET_KEY": Fernet.generate_key().decode(), "SOCIALCRM_DATA_DIR": str(tmp),
           "SOCIALCRM_HOST": "127.0.0.1", "SOCIALCRM_PORT": str(port), "SOCIALCRM_OUTBOX_INTERVAL_SECONDS": "0.5",
           "SOCIALCRM_PUBLIC_URL": f"http://127.0.0.1:{port}", "SOCIALCRM_PASSWORD": PASSWORD,
           "SIMULATOR_SECRET": SECRET, "SIMULATOR_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    run_cli(env, "migrate")
    run_cli(env, "create-user", "agent", "--role", "agent", "--team", "Care", "--display-name", "Kari Nordmann")
    platform_url = f"http://127.0.0.1:{platform_port}"
    add_channel(env, "simulator", "Acme Support", {"account_id": ACCOUNT, "webhook_secret": SECRET,
                                                   "api_token": TOKEN, "api_base_url": platform_url})
    st = Stack(f"http://127.0.0.1:{port}", platform_url, env)
    try:
        platform_log, server_log = tmp / "platform.log", tmp / "server.log"
        st.processes.append(_spawn([sys.executable, "-m", "connectors.simulator.platform", "--port", str(platform_port),
                                    "--account-id", ACCOUNT, "--interval", "0", "--followup-chance", "0"],
                                   env, platform_log))
        wait_http(f"{platform_url}/api/me", st.processes[-1], platform_log)
        st.processes.append(_spawn([sys.executable, "-m", "socialcrm", "serve"], env, server_log))
        wait_http(f"{st.base_url}/healthz", st.processes[-1], server_log)
        yield st
    finally:
        for proc in st.processes:
            proc.terminate()
        for proc in st.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One running stack shared by the tests; each test tags its own data."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}")
    with running_stack(tmp_path_factory.mktemp("browser-stack")) as st:
        yield st


@pytest.fixture
def fresh_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack with an empty inbox (the README screenshot shows only its own data)."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}")
    with running_stack(tmp_path) as st:
        yield st


# Package scope, not session: while Playwright's sync API runs it owns the thread's event loop, and
# the tests collected after these (asyncio.run in CLI tests) must find none running.
@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Watched:
    """A page plus what it did that it should not have: dialogs and CSP violations."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    csp_errors: list[str] = field(default_factory=list)


@contextmanager
def watched_page(chromium: Any, base_url: str) -> Iterator[Watched]:
    context = chromium.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    w = Watched(page)

    def on_dialog(dialog: Any) -> None:
        w.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda msg: w.csp_errors.append(f"{msg.text} (at {msg.location.get('url')}:"
                                                        f"{msg.location.get('lineNumber')})")
            if "Content Security Policy" in msg.text else None)
    # Injected by the browser driver, not by the page: it is not subject to the page's CSP.
    page.add_init_script("document.addEventListener('htmx:sseOpen', () => { window.__sseOpen = true; });")
    try:
        yield w
    finally:
        context.close()


@pytest.fixture
def watched(chromium: Any, stack: Stack) -> Iterator[Watched]:
    with watched_page(chromium, stack.base_url) as w:
        yield w


def sign_in(page: Any, username: str = "agent", password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def wait_live(page: Any) -> None:
    """Until the page's event stream is open (subscribed on the server before it opens).

    Polled from here with evaluate(): page.wait_for_function has to compile its expression in
    the page, which our Content-Security-Policy (no unsafe-eval) forbids whenever the first
    check fails, making the wait itself flaky.
    """
    deadline = time.monotonic() + 10
    while page.evaluate("() => window.__sseOpen === true") is not True:
        if time.monotonic() > deadline:
            raise AssertionError("the page's event stream did not open within 10 s")
        page.wait_for_timeout(50)
