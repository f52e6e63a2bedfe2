"""One customer across channels: a merge suggestion is accepted in the contact panel, then undone."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import SECRET, Stack, add_channel, sign_in, watched_page

MAIL_ACCOUNT = "brand-mail"


def deliver(stack: Stack, account: str, item: dict[str, Any], channel_id: int) -> None:
    """A signed webhook to the channel's own URL, as the platform would send it."""
    body = json.dumps({"account_id": account, "events": [item]}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{stack.base_url}/webhooks/simulator/{channel_id}", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Simulator-Signature": signature})
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
                return
        except urllib.error.HTTPError as exc:   # 404 until the server reloads its channels (once a second)
            if exc.code != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def in_thread(make_coro: Any) -> Any:
    """Playwright's sync API owns this thread's event loop: database work runs in another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make_coro()).result()


async def _detect(url: str) -> int:
    from socialcrm import merge
    from socialcrm.db import make_engine

    engine = make_engine(url)
    try:
        return await merge.detect(engine)
    finally:
        await engine.dispose()


async def _audit_actions(url: str) -> list[str]:
    from socialcrm import audit
    from socialcrm.db import make_engine

    engine = make_engine(url)
    try:
        return [e.action for e in await audit.entries(engine, action="contact")]
    finally:
        await engine.dispose()


def test_a_merge_suggestion_is_accepted_and_then_undone(chromium: Any, fresh_stack: Stack) -> None:
    stack, url = fresh_stack, fresh_stack.env["SOCIALCRM_DATABASE_URL"]
    mail = add_channel(stack.env, "simulator", "Acme Mail", {"account_id": MAIL_ACCOUNT, "webhook_secret": SECRET,
                                                      "api_token": "t", "api_base_url": stack.platform_url})
    deliver(stack, "brand", stack.item("dm", "Hei! Min e-post er Ola@Example.no, pakken kom aldri",
                                       author="ola-fb", name="Ola N", minutes_ago=20), 1)
    deliver(stack, MAIL_ACCOUNT, stack.item("dm", "Skriver igjen fra ola@example.no om pakken",
                                            author="ola-mail", name="Ola Nordmann", minutes_ago=5), mail)
    made, deadline = 0, time.monotonic() + 10      # webhooks are ingested just after they are acknowledged
    while made == 0 and time.monotonic() < deadline:
        made += in_thread(lambda: _detect(url))
        time.sleep(0.1)
    assert made == 1

    with watched_page(chromium, stack.base_url) as watched:
        page = watched.page
        sign_in(page)
        page.locator("tr.queue-row", has_text="pakken kom aldri").get_by_role("link").click()
        panel = page.locator("#contact-panel")
        suggestion = panel.locator(".merge-suggestion")
        expect(suggestion).to_contain_text("both wrote ola@example.no")
        expect(suggestion).to_contain_text("Ola Nordmann")
        expect(panel.locator(".identity")).to_have_count(1)

        suggestion.get_by_role("button", name="Merge").click()
        expect(panel.locator(".merge-done")).to_contain_text("Merged with Ola Nordmann")
        expect(panel.locator(".identity")).to_have_count(2)
        expect(panel.locator(".identities")).to_contain_text("@ola-fb")
        expect(panel.locator(".identities")).to_contain_text("@ola-mail")
        expect(panel.locator(".others")).to_contain_text("pakken kom aldri")
        expect(panel.locator(".others")).to_contain_text("Skriver igjen fra ola@example.no")
        expect(panel.locator(".others")).to_contain_text("Acme Mail")

        panel.get_by_role("button", name="Undo merge").click()
        expect(panel.locator(".merge-suggestion")).to_contain_text("both wrote ola@example.no")
        expect(panel.locator(".identity")).to_have_count(1)
        expect(panel.locator(".identities")).not_to_contain_text("@ola-mail")
        expect(panel.locator(".others")).not_to_contain_text("Skriver igjen")
        assert watched.csp_errors == [] and watched.dialogs == []

    deadline = time.monotonic() + 5
    while (actions := in_thread(lambda: _audit_actions(url))) != ["contact.unmerge", "contact.merge"]:
        assert time.monotonic() < deadline, actions
        time.sleep(0.1)
