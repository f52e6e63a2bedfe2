"""Collision guard in two real browsers: a second agent cannot post a duplicate public reply."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Stack, run_cli, sign_in, wait_live, watched_page


def open_conversation(page: Any, tag: str) -> str:
    page.locator("tr.queue-row", has_text=tag).get_by_role("link").click()
    page.wait_for_url("**/conversations/*")
    return page.url


def test_second_agents_duplicate_public_reply_is_blocked(chromium: Any, stack: Stack) -> None:
    tag = f"dup{int(time.time() * 1000)}"
    colleague = f"bo{tag}"
    run_cli(stack.env, "create-user", colleague, "--role", "agent", "--team", "Care", "--display-name", "Bo Berg")
    stack.deliver([stack.item("comment", f"Is the shop down? {tag}", author=f"c-{tag}", name="Nora Dahl",
                              thread=f"post-{tag}")])
    with watched_page(chromium, stack.base_url) as a, watched_page(chromium, stack.base_url) as b:
        sign_in(a.page)
        sign_in(b.page, colleague)
        url = open_conversation(a.page, tag)
        streams: list[str] = []
        b.page.on("request", lambda r: streams.append(r.url) if "/events" in r.url else None)
        assert open_conversation(b.page, tag) == url
        wait_live(b.page)
        # One stream per page (browsers allow few connections per host), for this conversation.
        assert [s.split("/events", 1)[1] for s in streams] == [f"?conversation={url.rsplit('/', 1)[1]}"]
        # Presence: each sees the other; B sees A typing (never what A types).
        expect(b.page.locator("#presence")).to_have_text("Kari Nordmann is also viewing.", timeout=15_000)
        expect(a.page.locator("#presence")).to_have_text("Bo Berg is also viewing.", timeout=15_000)
        b.page.get_by_label("Your reply").fill(f"Hi Nora, it's back up now {tag}")

        a.page.get_by_label("Your reply").fill(f"Sorry Nora, we are fixing it {tag}")
        expect(b.page.locator("#presence")).to_have_text("Kari Nordmann is typing.", timeout=15_000)
        a.page.get_by_role("button", name="Send reply").click()
        expect(a.page.locator("article.msg-out", has_text=f"we are fixing it {tag}")).to_be_visible(timeout=15_000)

        b.page.get_by_role("button", name="Send reply").click()
        warning = b.page.locator("#collision")
        expect(warning).to_be_visible(timeout=15_000)
        expect(warning).to_contain_text("not sent")
        expect(warning.locator(".collision-reply")).to_contain_text(f"Sorry Nora, we are fixing it {tag}")
        expect(warning.locator(".collision-reply .msg-author")).to_have_text("Kari Nordmann")
        expect(b.page.get_by_role("alert")).to_contain_text("Kari Nordmann replied publicly while you were writing")
        expect(b.page.get_by_label("Your reply")).to_have_value(f"Hi Nora, it's back up now {tag}")

        # Only A's reply reaches the platform, however long we wait for the outbox.
        expect(a.page.locator("article.msg-out", has_text=f"we are fixing it {tag}").locator(".delivery")) \
            .to_have_text("sent", timeout=15_000)
        texts = [r["text"] for r in stack.platform_replies() if tag in r["text"]]
        assert texts == [f"Sorry Nora, we are fixing it {tag}"]
        assert a.csp_errors == [] and b.csp_errors == []
