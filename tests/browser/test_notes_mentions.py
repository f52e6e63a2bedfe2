"""Two agents in two browsers: a note with an @mention rings the other agent's bell live."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Stack, run_cli, sign_in, watched_page


def _until_live(page: Any) -> None:
    """conftest.wait_live, without wait_for_function: its polling evaluates a string, which the
    page's CSP (no unsafe-eval) refuses whenever the stream is not open at the first look."""
    deadline = time.monotonic() + 10
    while not page.evaluate("window.__sseOpen === true"):
        assert time.monotonic() < deadline, "the event stream did not open"
        page.wait_for_timeout(50)


def _outbox_rows_for_notes(stack: Stack) -> int:
    path = stack.env["SOCIALCRM_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM outboxentry JOIN message ON message.id = outboxentry.message_id "
                          "WHERE message.direction = 'note'").fetchone()[0]


def test_a_note_with_a_mention_notifies_the_other_agent(chromium: Any, stack: Stack) -> None:
    tag = f"n{int(time.time() * 1000)}"
    colleague = f"agentb-{tag}"
    run_cli(stack.env, "create-user", colleague, "--role", "agent", "--team", "Care", "--display-name", "Bo Berg")
    stack.deliver([stack.item("dm", f"Where is my order? {tag}", author=f"note-{tag}", name="Nora Kunde")])
    note = f"@{colleague} can you check? {tag}"
    with watched_page(chromium, stack.base_url) as a, watched_page(chromium, stack.base_url) as b:
        sign_in(b.page, colleague)
        _until_live(b.page)
        b.page.evaluate("window.__sameDocument = 'yes'")
        expect(b.page.locator("#notifications-bell")).to_contain_text("Notifications")

        sign_in(a.page, "agent")
        a.page.locator("tr.queue-row", has_text=tag).get_by_role("link").click()
        a.page.get_by_label("Internal note").fill(note)
        a.page.get_by_role("button", name="Add note").click()
        written = a.page.locator("article.msg-note", has_text=tag)
        expect(written).to_contain_text("Internal note — not sent")
        expect(written.locator("mark.mention")).to_have_text(f"@{colleague}")

        # B's inbox, never reloaded, now shows who mentioned them and where.
        item = b.page.locator(".bell-item", has_text=tag)
        expect(item).to_be_visible(timeout=15_000)
        expect(item).to_contain_text("Kari Nordmann mentioned you")
        expect(b.page.locator(".bell-count")).to_have_text("1")
        assert b.page.evaluate("window.__sameDocument") == "yes", "the page was reloaded"

        item.click()
        b.page.wait_for_url("**/conversations/*")
        seen = b.page.locator("article.msg-note", has_text=tag)
        expect(seen).to_contain_text("Internal note — not sent")
        expect(seen).to_contain_text("Kari Nordmann")
        expect(b.page.locator(".bell-count")).to_have_count(0)            # followed: read
        assert a.csp_errors == [] and b.csp_errors == [] and a.dialogs == [] and b.dialogs == []

    assert _outbox_rows_for_notes(stack) == 0
    assert not [r for r in stack.platform_replies() if tag in r["text"]], "the note reached the platform"
