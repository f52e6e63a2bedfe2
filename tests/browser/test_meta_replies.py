"""Answer in the channel the customer used: publicly under a Facebook comment, privately to an
Instagram DM. Conversations are made from the connectors' documented fixtures, delivered as
signed webhooks; the replies reach a fake Graph API on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ROOT, Stack, add_channel, fake_graph, sign_in

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


@pytest.fixture(scope="module")
def graph(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with fake_graph(tmp_path_factory.mktemp("graph")) as url:
        common = {"app_secret": APP_SECRET, "verify_token": "verify", "access_token": "page-token",
                  "api_base_url": url}
        add_channel(stack.env, "facebook", "Acme on Facebook", {**common, "page_id": PAGE_ID})
        add_channel(stack.env, "instagram", "Acme on Instagram", {**common, "ig_user_id": IG_ID})
        yield url


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

