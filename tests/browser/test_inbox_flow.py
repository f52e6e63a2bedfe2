"""What an agent does all day, in a real browser against the real server."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Stack, Watched, sign_in, wait_live, watched_page

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshot-inbox.png"
XSS_TEXT = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"
XSS_NAME = "<img src=x onerror=alert(2)><script>alert(3)</script>"


def test_public_post_on_top_reply_and_see_it_sent(watched: Watched, stack: Stack) -> None:
    tag = f"t{int(time.time() * 1000)}"
    stack.deliver([stack.item("dm", f"Private question {tag}", author=f"dm-{tag}", name="Ingrid Berg",
                              minutes_ago=30)])
    stack.deliver([stack.item("comment", f"Public complaint {tag}", author=f"pub-{tag}", name="Jonas Lie",
                              thread=f"post-{tag}")])
    page = watched.page
    sign_in(page)
    first = page.locator("tr.queue-row").first
    expect(first).to_have_attribute("data-public", "true")
    expect(first).to_contain_text(f"Public complaint {tag}")
    expect(first.locator(".badge-public")).to_have_text("Public")

    first.get_by_role("link").click()
    expect(page.get_by_text("Public — everyone can see this")).to_be_visible()
    box = page.get_by_label("Your reply")
    box.fill("x" * 503)
    expect(page.locator("#reply-counter")).to_have_text("503 / 500 (3 too many)")
    box.fill(f"Sorry about that, Jonas! {tag}")
    expect(page.locator("#reply-counter")).to_have_text(re.compile(r"^\d+ / 500$"))
    page.get_by_role("button", name="Send reply").click()

    reply = page.locator("article.msg-out", has_text=f"Sorry about that, Jonas! {tag}")
    expect(reply.locator(".delivery")).to_have_text("sent", timeout=15_000)
    texts = [r["text"] for r in stack.platform_replies()]
    assert f"Sorry about that, Jonas! {tag}" in texts
    assert watched.csp_errors == []


def test_customer_markup_is_shown_literally_and_never_runs(watched: Watched, stack: Stack) -> None:
    tag = f"x{int(time.time() * 1000)}"
    stack.deliver([stack.item("comment", f"{XSS_TEXT} {tag}", author=f"xss-{tag}", name=XSS_NAME,
                              thread=f"post-{tag}")])
    page = watched.page
    sign_in(page)
    row = page.locator("tr.queue-row", has_text=tag)
    expect(row).to_contain_text(XSS_TEXT)
    expect(row).to_contain_text(XSS_NAME)
    row.get_by_role("link").click()
    expect(page.locator("article.msg-in .msg-text")).to_have_text(f"{XSS_TEXT} {tag}")
    expect(page.locator("article.msg-in .msg-author")).to_have_text(XSS_NAME)
    assert page.locator("main img").count() == 0, "no <img> came out of customer text"
    page.wait_for_timeout(300)   # an onerror handler would have fired by now
    assert watched.dialogs == []
    assert watched.csp_errors == []


def test_new_webhook_message_appears_without_reload(watched: Watched, stack: Stack) -> None:
    page = watched.page
    sign_in(page)
    wait_live(page)
    page.evaluate("window.__sameDocument = 'yes'")
    tag = f"live{int(time.time() * 1000)}"
    stack.deliver([stack.item("dm", f"Just arrived {tag}", author=f"live-{tag}", name="Live Customer")])
    expect(page.locator("tr.queue-row", has_text=f"Just arrived {tag}")).to_be_visible(timeout=20_000)
    assert page.evaluate("window.__sameDocument") == "yes", "the page was not reloaded"
    assert page.evaluate("typeof htmx") == "object"
    assert watched.csp_errors == []


def test_inbox_screenshot_for_the_readme(chromium: Any, fresh_stack: Stack) -> None:
    fresh_stack.deliver([
        fresh_stack.item("comment", "Your app has been down all morning and nobody answers the phone!",
                   author="maria_h", name="Maria Haugen", thread="post-outage", minutes_ago=48, followers=12_400),
        fresh_stack.item("post", "@acme I was charged twice for order 10442, can someone look?",
                   author="tomasb", name="Tomas Bakken", thread="post-charged", minutes_ago=12),
        fresh_stack.item("dm", "Hi! Can I change the delivery address for my order?", author="sofie.l",
                   name="Sofie Lund", minutes_ago=95),
        fresh_stack.item("dm", "Thanks for the quick help yesterday! One more question about returns.",
                   author="erik_n", name="Erik Nilsen", minutes_ago=20),
    ])
    with watched_page(chromium, fresh_stack.base_url) as watched:
        page = watched.page
        sign_in(page)
        page.get_by_role("button", name="Go online").click()
        expect(page.locator(".presence-state")).to_have_text("Online")
        rows = page.locator("tr.queue-row")
        expect(rows).to_have_count(4)
        expect(rows.first).to_contain_text("Maria Haugen")
        expect(rows.first.locator(".assignee")).to_have_text("Kari Nordmann"), "going online took work"
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert SCREENSHOT.stat().st_size > 10_000
        assert watched.csp_errors == []
