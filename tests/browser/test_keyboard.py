"""The keyboard flow in a real browser: every shortcut pressed, its effect checked, and the
same actions reachable as labelled controls."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Stack, Watched, sign_in


def focused(page: Any) -> str:
    return page.evaluate("document.activeElement ? (document.activeElement.id || document.activeElement.getAttribute('href') || document.activeElement.tagName) : ''")


def row_hrefs(page: Any) -> list[str]:
    return page.locator("tr.queue-row a").evaluate_all("links => links.map(a => a.getAttribute('href'))")


def test_j_k_move_through_the_inbox_and_the_conversations(watched: Watched, stack: Stack) -> None:
    tag = f"kb{int(time.time() * 1000)}"
    stack.deliver([stack.item("dm", f"Question {i} {tag}", author=f"k{i}-{tag}", name=f"Kunde {i}", minutes_ago=50 - i)
                   for i in range(3)])
    page = watched.page
    sign_in(page)
    expect(page.locator("tr.queue-row", has_text=f"Question 2 {tag}")).to_be_visible()
    hrefs = row_hrefs(page)
    assert len(hrefs) >= 3

    page.keyboard.press("j")
    assert focused(page) == hrefs[0]
    expect(page.locator("tr.queue-row").first).to_have_class(re.compile("queue-row-selected"))
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert focused(page) == hrefs[2]
    page.keyboard.press("k")
    assert focused(page) == hrefs[1]

    page.keyboard.press("Enter")                       # the focused row's link opens it
    page.wait_for_url(f"**{hrefs[1]}")
    page.keyboard.press("j")
    page.wait_for_url(f"**{hrefs[2]}")
    page.keyboard.press("k")
    page.wait_for_url(f"**{hrefs[1]}")
    # The same moves as visible, labelled links (mouse and screen readers).
    nav = page.get_by_role("navigation", name="Previous and next conversation")
    expect(nav.get_by_role("link", name=re.compile("Next conversation"))).to_have_attribute("href", hrefs[2])
    expect(nav.get_by_role("link", name=re.compile("Previous conversation"))).to_have_attribute("href", hrefs[0])
    assert watched.csp_errors == []


def test_r_n_a_slash_e_and_the_help_dialog(watched: Watched, stack: Stack) -> None:
    tag = f"ka{int(time.time() * 1000)}"
    stack.deliver([stack.item("comment", f"Need help {tag}", author=f"ka-{tag}", name="Siri Moe", thread=f"p-{tag}")])
    page = watched.page
    sign_in(page)
    page.locator("tr.queue-row", has_text=tag).get_by_role("link").click()
    page.wait_for_url("**/conversations/*")
    url = page.url

    page.keyboard.press("r")
    assert focused(page) == "reply-text"
    page.keyboard.type("jke")                           # typed, not shortcuts
    expect(page.get_by_label("Your reply")).to_have_value("jke")
    assert page.url == url
    page.keyboard.press("Escape")                       # leaves the field: shortcuts work again
    assert focused(page) != "reply-text"

    page.keyboard.press("n")
    assert focused(page) == "note-text"
    page.keyboard.press("Escape")

    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Resolve the conversation")
    assert focused(page) == "keys-close"
    for key in ("Tab", "Shift+Tab", "Tab"):             # focus stays inside the dialog
        page.keyboard.press(key)
        assert page.evaluate("document.getElementById('keys-help').contains(document.activeElement)")
    page.keyboard.press("a")                            # no shortcut while the dialog is open
    expect(page.locator(".assignment")).not_to_have_text(re.compile("Assigned to you"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # The same list from a visible, labelled button; focus returns to it on close.
    opener = page.get_by_role("button", name=re.compile("Keyboard shortcuts"))
    opener.click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    assert focused(page) == "keys-open"

    page.keyboard.press("/")
    expect(page.locator("#answers-picker")).to_be_visible()
    expect(page.locator("#answers-search")).to_be_focused()     # the picker focuses its search box
    page.keyboard.press("Escape")
    expect(page.locator("#answers-picker")).to_be_hidden()
    page.keyboard.press("Escape")                       # leave the reply box the picker returned to

    page.keyboard.press("a")
    expect(page.locator(".assignment")).to_have_text(re.compile("^Assigned to you"))
    page.keyboard.press("e")
    expect(page.locator(".thread-header .status")).to_have_text("resolved")
    expect(page.locator("#resolve-button")).to_have_count(0)
    assert watched.csp_errors == []


def test_controls_have_names_and_a_sensible_focus_order(watched: Watched, stack: Stack) -> None:
    tag = f"kf{int(time.time() * 1000)}"
    stack.deliver([stack.item("dm", f"Order? {tag}", author=f"kf-{tag}", name="Ola Vik")])
    page = watched.page
    sign_in(page)
    page.locator("tr.queue-row", has_text=tag).get_by_role("link").click()
    page.wait_for_url("**/conversations/*")
    for name in ("Assign to me", "Resolve", "Send reply", "Keyboard shortcuts"):
        expect(page.get_by_role("button", name=re.compile(name)).first).to_be_visible()
    expect(page.get_by_label("Your reply")).to_be_visible()
    order = []
    for _ in range(60):
        page.keyboard.press("Tab")
        order.append(focused(page))
    # The header (shortcuts button) comes before the thread's actions, which come before the reply box.
    assert order.index("keys-open") < order.index("reply-text")
    assert watched.csp_errors == []
