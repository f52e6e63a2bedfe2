"""Answer in the channel the customer used: publicly under a Facebook comment, privately to an
Instagram DM. Conversations are made from the connectors' documented fixtures, delivered as
signed webhooks; the replies reach a fake Graph API on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ROOT, Stack, free_port, sign_in, wait_http

APP_SECRET = "browser-meta-app-secret"
PAGE_ID, IG_ID = "104650212345678", "17841405822304914"


def fresh(fixture: Path, seconds_key: str | None, ms_key: str | None) -> bytes:
    """The documented payload, re-dated to now (reply windows are real), escaped as Meta sends it."""
    data = json.loads(fixture.read_bytes())
    now = time.time()
    for entry in data["entry"]:
        entry["time"] = int(now * 1000) if ms_key else int(now)
        for item in entry.get("changes", []):
            item["value"][seconds_key] = int(now)
        for item in entry.get("messaging", []):
            item[ms_key] = int(now * 1000)
    return json.dumps(data).encode()


def deliver(stack: Stack, connector: str, body: bytes) -> None:
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{stack.base_url}/webhooks/{connector}", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


async def _add_meta_channels(env: dict[str, str], graph_url: str) -> None:
    import sqlalchemy as sa

    from socialcrm import models
    from socialcrm.channels import create_channel
    from socialcrm.config import Settings
    from socialcrm.db import make_engine
    from socialcrm.registry import Registry
    from socialcrm.vault import Vault

    settings = Settings(database_url=env["SOCIALCRM_DATABASE_URL"], secret_key=env["SOCIALCRM_SECRET_KEY"])
    engine = make_engine(settings.database_url)
    common = {"app_secret": APP_SECRET, "verify_token": "verify", "access_token": "page-token",
              "api_base_url": graph_url}
    try:
        async with engine.connect() as conn:
            team = await conn.scalar(sa.select(models.Team.__table__.c.id).where(models.Team.__table__.c.name == "Care"))
        for key, name, extra in (("facebook", "Acme on Facebook", {"page_id": PAGE_ID}),
                                 ("instagram", "Acme on Instagram", {"ig_user_id": IG_ID})):
            await create_channel(engine, Registry.from_entry_points(), Vault.from_settings(settings),
                                 connector=key, name=name, team_id=team, settings={**common, **extra})
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def graph(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    port, log = free_port(), tmp_path_factory.mktemp("graph") / "graph.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests/browser/fake_graph.py"), "--port", str(port)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_requests", proc, log)
        with ThreadPoolExecutor(1) as pool:   # the server process reads channels at its next cache load
            pool.submit(asyncio.run, _add_meta_channels(stack.env, url)).result()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def graph_requests(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_requests", timeout=5) as resp:
        return json.loads(resp.read())


def reply_and_wait_sent(page: Any, text: str) -> None:
    page.get_by_label("Your reply").fill(text)
    page.get_by_role("button", name="Send reply").click()
    page.locator("article.msg-out", has_text=text).locator(".delivery-sent").wait_for(timeout=15_000)


def test_public_reply_to_a_facebook_comment_and_private_reply_to_an_instagram_dm(stack, graph, watched) -> None:
    deliver(stack, "facebook", fresh(ROOT / "connectors/facebook/fixtures/feed_comment__top_level.json",
                                     "created_time", None))
    deliver(stack, "instagram", fresh(ROOT / "connectors/instagram/fixtures/dm__text.json", None, "timestamp"))
    page = watched.page
    sign_in(page)
    page.goto("/?tab=all")
    page.get_by_role("link", name="Kari Nordmann").first.click()
    assert page.get_by_text("Public — everyone can see this").count() >= 1
    reply_and_wait_sent(page, "Hei Kari! Vi åpner kl. 10 i Tromsø.")
    page.goto("/?tab=all")
    page.locator("tr", has_text="Ordernummer 48213").get_by_role("link").first.click()
    assert page.locator(".thread-title .badge-private").count() == 1
    reply_and_wait_sent(page, "Hej! Din beställning skickades i går.")
    sent = {r["path"]: r for r in graph_requests(graph)}
    comment_reply = next(r for p, r in sent.items() if p.endswith("/1234567890123456_987654321098765/comments"))
    assert "Tromsø" in comment_reply["body"] or "Troms%C3%B8" in comment_reply["body"]
    dm = next(r for p, r in sent.items() if p.endswith(f"/{IG_ID}/messages"))
    assert json.loads(dm["body"])["recipient"] == {"id": "7130482395716248"}
    assert all(r["authorization"] == "Bearer page-token" for r in sent.values())   # never in the URL
    assert watched.dialogs == [] and watched.csp_errors == []

