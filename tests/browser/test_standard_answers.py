"""A lead sets up a help article and a team answer; an agent types `/` in a public reply, picks
the answer, sees it filled in with a short link, sends it; the customer's click is counted."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from tests.browser.conftest import Stack, Watched, run_cli, sign_in, watched_page


def _lead_sets_up(page, tag: str, faq: str) -> int:
    page.goto("/help-articles")
    page.get_by_label("Title").fill(f"Returns {tag}")
    page.get_by_label("Address").fill(faq)
    page.get_by_role("button", name="Add article").click()
    row = page.locator("tr", has_text=f"Returns {tag}")
    article_id = int(re.search(r"\{help:(\d+)\}", row.inner_text()).group(1))
    page.goto("/answers/new")
    page.get_by_label("Title").fill(f"Refund help {tag}")
    page.get_by_label("Text", exact=True).fill(
        f"Hi {{customer_first_name}}, {{agent_first_name}} here. You can follow your return at {{help:{article_id}}}")
    page.get_by_label("Tags, separated by commas").fill("refund, returns")
    page.get_by_label("Shared with").select_option(label="Team Care")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("cell", name=f"Refund help {tag}", exact=True)).to_be_visible()
    return article_id


def test_agent_inserts_a_standard_answer_with_a_help_link_and_the_click_is_counted(
        chromium, watched: Watched, stack: Stack) -> None:
    tag = f"sa{int(time.time() * 1000)}"
    # The "FAQ" lives on the loopback platform (it answers 404): the browser can really land there.
    faq = f"{stack.platform_url}/faq/returns-{tag}"
    run_cli(stack.env, "create-user", f"lead-{tag}", "--role", "lead", "--team", "Care", "--display-name", "Lea Lead")
    with watched_page(chromium, stack.base_url) as lead:
        sign_in(lead.page, f"lead-{tag}")
        _lead_sets_up(lead.page, tag, faq)
        assert lead.csp_errors == []
    stack.deliver([stack.item("comment", f"Where is my refund? {tag}", author=f"ingrid-{tag}", name="Ingrid Berg",
                              thread=f"post-{tag}")])

    page = watched.page
    sign_in(page)
    page.goto("/?tab=all")
    page.locator("tr.queue-row", has_text=tag).get_by_role("link").first.click()
    box = page.get_by_label("Your reply")
    box.click()
    box.press("/")
    search = page.get_by_label("Search answers")
    expect(search).to_be_focused()
    assert box.input_value() == "", "the / that opened the picker is not typed into the reply"
    search.fill(f"refund {tag}")
    option = page.get_by_role("option", name=re.compile(f"Refund help {tag}"))
    expect(option).to_have_attribute("aria-selected", "true")
    search.press("Enter")

    expect(box).to_be_focused()
    filled = re.compile(rf"^Hi Ingrid, Kari here\. You can follow your return at {re.escape(stack.base_url)}/l/(\w+)$")
    expect(box).to_have_value(filled)
    text = box.input_value()
    code = filled.match(text).group(1)
    expect(page.locator("#reply-counter")).to_have_text(f"{len(text)} / 500")
    expect(page.locator("#answers-note")).to_be_hidden()
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("article.msg-out", has_text=text).locator(".delivery")).to_have_text("sent", timeout=15_000)
    assert text in [r["text"] for r in stack.platform_replies()]
    assert watched.csp_errors == [] and watched.dialogs == []

    # The customer's own browser (not signed in) follows the link.
    with watched_page(chromium, stack.base_url) as customer:
        customer.page.goto(f"/l/{code}")
        assert customer.page.url == faq

    with watched_page(chromium, stack.base_url) as lead:
        sign_in(lead.page, f"lead-{tag}")
        lead.page.goto("/help-articles")
        row = lead.page.locator("tr", has_text=f"Returns {tag}")
        expect(row.locator(".article-clicks")).to_have_text("1")
        expect(row).to_contain_text("1 conversation")
