"""A Facebook channel whose token Meta has invalidated: the reply is answered with the documented
Graph error 190, the channel turns "needs re-authorisation", the agent's composer says why and will
not send, and an admin sees the channel flagged on the health page."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.browser.conftest import (
    ROOT,
    Stack,
    add_channel,
    fake_graph,
    run_cli,
    sign_in,
)

APP_SECRET = "reauth-app-secret"
PAGE_ID, CUSTOMER = "204650212345679", "6931281043699999"
TEXT = "Reauth-test: hvor blir pakken min av?"


def message(now: float) -> bytes:
    """The documented Messenger text fixture, for this page, re-dated to now."""
    data = json.loads((ROOT / "connectors/facebook/fixtures/message__text.json").read_bytes())
    entry = data["entry"][0]
    entry["id"], entry["time"] = PAGE_ID, int(now * 1000)
    item = entry["messaging"][0]
    item["sender"]["id"], item["recipient"]["id"], item["timestamp"] = CUSTOMER, PAGE_ID, int(now * 1000)
    item["message"] = {"mid": f"m_reauth_{int(now)}", "text": TEXT}
    return json.dumps(data).encode()


def post(url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def deliver(url: str, body: bytes) -> None:
    """Signed as Meta signs; the server learns of a new channel at its next reload (at most 1/s)."""
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
    deadline = time.monotonic() + 10
    while (status := post(url, body, headers)) in (401, 404) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 200


@pytest.fixture(scope="module")
def reauth_graph(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with fake_graph(tmp_path_factory.mktemp("reauth-graph")) as url:
        channel_id = add_channel(stack.env, "facebook", "Acme Reauth", {
            "page_id": PAGE_ID, "app_secret": APP_SECRET, "verify_token": "verify",
            "access_token": "soon-invalid-token", "api_base_url": url})
        run_cli(stack.env, "create-user", "reauth-admin", "--role", "admin", "--display-name", "Ada Admin")
        yield url, channel_id


def test_a_rejected_token_blocks_the_composer_and_flags_the_channel(stack, reauth_graph, watched) -> None:
    graph_url, channel_id = reauth_graph
    deliver(f"{stack.base_url}/webhooks/facebook/{channel_id}", message(time.time()))
    assert post(f"{graph_url}/_token/revoked") == 200     # Meta invalidates the token

    page = watched.page
    sign_in(page)
    page.goto("/?tab=all")
    page.locator("tr", has_text="Reauth-test").get_by_role("link").first.click()
    conversation = page.url
    send = page.get_by_role("button", name="Send reply")
    assert send.is_enabled()
    page.get_by_label("Your reply").fill("Hei! Vi sjekker pakken din nå.")
    send.click()

    deadline = time.monotonic() + 20
    while True:                                  # the outbox tries, gets 190, flags the channel
        page.goto(conversation)
        if page.get_by_text("needs re-authorisation").count():
            break
        assert time.monotonic() < deadline, "the channel never turned 'needs re-authorisation'"
        time.sleep(0.5)
    assert page.locator(".composer .alert-warn", has_text="needs re-authorisation by an admin").count() == 1
    assert page.get_by_role("button", name="Send reply").is_disabled()
    sent = json.loads(urllib.request.urlopen(f"{graph_url}/_requests", timeout=5).read())
    assert any(r["method"] == "POST" and r["path"].endswith(f"/{PAGE_ID}/messages") for r in sent)

    page.context.clear_cookies()
    sign_in(page, "reauth-admin")
    page.goto("/admin/health")
    card = page.locator(f"#health-{channel_id}")
    assert card.locator(".alert-warn", has_text="Needs re-authorisation").count() == 1
    assert "Error validating access token" in card.inner_text()
    assert card.locator(".platform-warning", has_text="The token is no longer valid").count() == 1
    assert card.locator(".token-status").inner_text().startswith("no longer valid")
    assert watched.dialogs == [] and watched.csp_errors == []
