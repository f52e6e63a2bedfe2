"""An admin connects a Telegram bot in the browser: a wrong token is refused before anything is
saved, the right one is stored (shown only as its last 4), the webhook is registered with the
Bot API (a fake on loopback), and the health page shows what getWebhookInfo reports."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import ROOT, Stack, run_cli, sign_in
from tests.processes import free_port, wait_http

RIGHT_TOKEN = "7012345678:AAH-right-Token_x9Kq"
WRONG_TOKEN = "7012345678:AAH-wrong-Token_0000"
HOOK_SECRET = "acme-hook-secret_5150"


@pytest.fixture(scope="module")
def telegram(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port, log = free_port(), tmp_path_factory.mktemp("telegram") / "telegram.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests/browser/fake_telegram.py"), "--port", str(port),
                                 "--token", RIGHT_TOKEN], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_requests", proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def admin(stack: Stack) -> str:
    run_cli(stack.env, "create-user", "admin", "--role", "admin", "--team", "Care", "--display-name", "Ada Admin")
    return "admin"


def bot_calls(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_requests", timeout=5) as resp:
        return json.loads(resp.read())


def fill_telegram_form(page: Any, telegram: str, token: str) -> None:
    page.locator('input[name="name"]').fill("Acme on Telegram")
    page.locator('select[name="team_id"]').select_option(label="Care")
    page.locator('input[name="bot_token"]').fill(token)
    page.locator('input[name="secret_token"]').fill(HOOK_SECRET)
    page.locator('input[name="api_base_url"]').fill(telegram)
    page.get_by_role("button", name="Test connection and save").click()


def test_admin_adds_a_telegram_channel_and_registers_its_webhook(stack, telegram, admin, watched) -> None:
    page = watched.page
    sign_in(page, admin)
    page.get_by_role("link", name="Channels").click()
    page.get_by_role("link", name="Add a channel").click()
    page.locator('select[name="connector"]').select_option("telegram")
    page.get_by_role("button", name="Choose").click()
    assert page.locator('input[name="bot_token"]').get_attribute("type") == "password"

    fill_telegram_form(page, telegram, WRONG_TOKEN)
    page.get_by_text("The platform refused these credentials").wait_for()
    assert WRONG_TOKEN not in page.content() and HOOK_SECRET not in page.content()
    assert page.locator('input[name="bot_token"]').input_value() == ""     # secrets are never sent back
    assert [c["method"] for c in bot_calls(telegram)] == ["getMe"]
    page.goto("/admin/channels")
    assert page.get_by_text("Acme on Telegram").count() == 0                # nothing was saved

    page.goto("/admin/channels/new?connector=telegram")
    fill_telegram_form(page, telegram, RIGHT_TOKEN)
    page.wait_for_url("**/admin/channels/*")
    webhook_url = page.locator("#webhook-url").inner_text()
    channel_id = page.url.rsplit("/", 1)[1]
    assert webhook_url == f"{stack.base_url}/webhooks/telegram/{channel_id}"
    assert page.get_by_text("•••• x9Kq").count() == 1 and page.get_by_text("•••• 5150").count() == 1
    assert RIGHT_TOKEN not in page.content() and HOOK_SECRET not in page.content()

    page.get_by_role("button", name="Register webhook").click()
    page.get_by_text(f"The platform now sends events to {webhook_url}").wait_for()
    registered = [c for c in bot_calls(telegram) if c["method"] == "setWebhook"]
    assert len(registered) == 1 and registered[0]["valid_token"]
    assert registered[0]["body"]["url"] == webhook_url and registered[0]["body"]["secret_token"] == HOOK_SECRET
    assert page.locator("#channel-state").inner_text() == "active"

    page.goto("/admin/channels")
    row = page.locator("tr", has_text="Acme on Telegram")
    assert row.get_by_text("active").count() == 1 and row.get_by_text("7012345678").count() == 1

    page.goto("/admin/health")
    card = page.locator(f"#health-{channel_id}")
    assert card.get_by_text("The platform reports a webhook error: Wrong response from the webhook: 502").count() == 1
    assert card.get_by_text("2 updates waiting at the platform").count() == 1
    assert watched.dialogs == [] and watched.csp_errors == []
