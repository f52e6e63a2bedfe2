"""A team lead's dashboard in a real browser: follow a number to its conversations, download the CSV,
see the live panel move without a reload; and the README's screenshot."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import CHROMIUM, Stack, run_cli, running_stack, sign_in, watched_page

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshot-dashboard.png"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Its own stack (the seeded month would crowd the other tests' inboxes) with a lead and ~2,500
    conversations on five channels: enough for every chart to have a shape."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}")
    with running_stack(tmp_path_factory.mktemp("dashboard-stack")) as st:
        run_cli(st.env, "create-user", "lead", "--role", "lead", "--display-name", "Lars Leder")
        run_cli(st.env, "seed", "--conversations", "2500", "--agents", "9", "--channels", "5")
        yield st


def _wait_live(page: Any, timeout_ms: int = 10_000) -> None:
    """Like conftest.wait_live, but polling with page.evaluate: wait_for_function's own polling
    compiles its expression inside the page, which our CSP (no unsafe-eval) refuses."""
    for _ in range(timeout_ms // 100):
        if page.evaluate("window.__sseOpen === true"):
            return
        page.wait_for_timeout(100)
    raise AssertionError("the event stream did not open")


def _number(cell: Any) -> int:
    return int(cell.inner_text().strip())


def test_a_lead_follows_a_number_to_its_conversations_and_downloads_the_csv(chromium: Any, seeded: Stack,
                                                                           tmp_path: Path) -> None:
    with watched_page(chromium, seeded.base_url) as watched:
        page = watched.page
        sign_in(page, "lead")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
        expect(page.get_by_role("heading", name="Response times")).to_be_visible()
        public_row = page.locator('table[data-table="visibility"] tbody tr', has=page.locator("th", has_text="public"))
        link = public_row.locator('td[data-figure="conversations"] a')
        public = _number(link)
        link.click()
        page.wait_for_url(re.compile(r"/dashboard/conversations\?.*figure=conversations"))
        expect(page.locator("#drill-total")).to_have_text(str(public))
        rows = page.locator("table.drill tbody tr")
        expect(rows).to_have_count(min(public, 50))
        expect(rows.first.locator(".badge-public")).to_be_visible()
        rows.first.get_by_role("link").click()
        expect(page.get_by_text("Public — everyone can see this")).to_be_visible()

        page.goto("/dashboard?range=30d")
        total = _number(page.locator('table[data-table="all"] td[data-figure="conversations"] a'))
        with page.expect_download() as download:
            page.get_by_role("link", name="Download CSV").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name.startswith("response-times-") and saved.suffix == ".csv"
        with saved.open(newline="") as f:
            table = list(csv.DictReader(f))
        assert {r["table"] for r in table} == {"all", "channel", "visibility", "agent", "team"}
        assert [r["Conversations"] for r in table if r["table"] == "all"] == [str(total)]
        assert {r["group"] for r in table if r["table"] == "visibility"} == {"public", "private"}
        assert watched.csp_errors == [] and watched.dialogs == []


def test_the_live_panel_moves_without_a_reload(chromium: Any, seeded: Stack) -> None:
    with watched_page(chromium, seeded.base_url) as watched:
        page = watched.page
        sign_in(page, "lead")
        page.goto("/dashboard")
        _wait_live(page)
        page.evaluate("window.__sameDocument = 'yes'")
        # (not "unassigned": the router may hand the newcomer, and older ones, to the seeded agents online)
        opened = page.locator("#dashboard-live .stats a", has_text=re.compile(r"^\s*\d+\s+open\s*$")).locator(".stat-number")
        before = _number(opened)
        seeded.deliver([seeded.item("dm", "Hei, er det noen der?", author="live-dash", name="Live Kunde")])
        expect(opened).to_have_text(str(before + 1), timeout=20_000)
        assert page.evaluate("window.__sameDocument") == "yes"
        assert watched.csp_errors == []


def test_dashboard_screenshot_for_the_readme(chromium: Any, seeded: Stack) -> None:
    with watched_page(chromium, seeded.base_url) as watched:
        page = watched.page
        sign_in(page, "lead")
        page.goto("/dashboard?range=30d")
        expect(page.locator("svg.chart")).to_have_count(4)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert SCREENSHOT.stat().st_size > 30_000
        assert watched.csp_errors == []
