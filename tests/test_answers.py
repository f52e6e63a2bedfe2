"""Standard answers: placeholders filled safely, drafts checked, search and who may use what."""

from __future__ import annotations

import pytest

from socialcrm import answers
from socialcrm.answers import AnswerRejected, Draft
from socialcrm.users import Viewer, create_user, ensure_team
from tests.support import running_core

VALUES = answers.placeholder_values(customer="Ingrid  Marie Berg", agent="Kari Nordmann", channel="Acme Support",
                                    platform="Facebook")


def viewer(user_id: int, role: str = "agent", teams: tuple[int, ...] = ()) -> Viewer:
    return Viewer(id=user_id, username=f"u{user_id}", display_name="", role=role, online=False, session_epoch=0,
                  team_ids=frozenset(teams))


# -- placeholders (pure) ------------------------------------------------------------------------

def test_every_known_placeholder_is_filled() -> None:
    body = ("Hi {customer_first_name} ({customer_name})! {agent_first_name} here, {agent_name} on {channel_name} "
            "({platform_name}).")
    filled = answers.fill(body, VALUES)
    assert filled.text == ("Hi Ingrid (Ingrid Marie Berg)! Kari here, Kari Nordmann on Acme Support (Facebook).")
    assert (filled.unknown, filled.missing) == ((), ())


def test_unknown_placeholders_stay_visible_and_are_reported_once() -> None:
    filled = answers.fill("Order {order_number}, ref {order_number}, {Customer_Name} {x}", VALUES)
    assert filled.text == "Order {order_number}, ref {order_number}, {Customer_Name} {x}"
    assert filled.unknown == ("{order_number}", "{x}")   # {Customer_Name} is not placeholder syntax at all


def test_a_known_placeholder_without_a_value_stays_and_is_reported_missing() -> None:
    values = answers.placeholder_values(customer="", agent="Kari", channel="Acme", platform="X")
    filled = answers.fill("Hi {customer_first_name}, {agent_name} here", values)
    assert filled.text == "Hi {customer_first_name}, Kari here"
    assert filled.missing == ("{customer_first_name}",) and filled.unknown == ()


@pytest.mark.parametrize("name", ["{agent_name}", "{0.__class__.__mro__}", "{help:1}", "{{customer_name}}", "%s {}"])
def test_a_customer_name_is_plain_text_never_a_template(name: str) -> None:
    values = answers.placeholder_values(customer=name, agent="Kari", channel="Acme", platform="X")
    filled = answers.fill("Hi {customer_name}, from {agent_name}", values, lambda _id: "https://evil.example/")
    assert filled.text == f"Hi {name}, from Kari"
    assert filled.articles == ()


def test_help_placeholders_become_links_or_stay_when_the_article_is_unknown() -> None:
    links = {3: "https://crm.example/l/AbCd2345"}
    filled = answers.fill("See {help:3} or {help:9}. Again: {help:3}", VALUES, links.get)
    assert filled.text == "See https://crm.example/l/AbCd2345 or {help:9}. Again: https://crm.example/l/AbCd2345"
    assert filled.articles == (3,) and filled.unknown == ("{help:9}",)
    assert answers.help_ids("{help:3} {help:9} {help:3} {helpx:1}") == [3, 9]


def test_tags_are_normalized() -> None:
    assert answers.normalize_tags(" Billing, refund ;billing,, Late  delivery ") == "billing,refund,late delivery"


@pytest.mark.parametrize(("draft", "reason"), [
    (Draft("", "text"), "title"),
    (Draft("t" * 201, "text"), "title is too long"),
    (Draft("Title", "   "), "empty"),
    (Draft("Title", "x" * 5001), "too long"),
    (Draft("Title", "text", language="Norwegian"), "language"),
    (Draft("Title", "text", tags=",".join(f"tag{i}" for i in range(100))), "tags"),
])
def test_bad_drafts_are_refused_with_a_reason(draft: Draft, reason: str) -> None:
    with pytest.raises(AnswerRejected, match=reason):
        answers.check_draft(draft)


def test_only_leads_and_admins_share_with_a_team() -> None:
    with pytest.raises(AnswerRejected, match="team leads and admins"):
        answers.scope_columns(viewer(1, "agent", (5,)), "5")
    assert answers.scope_columns(viewer(2, "lead"), "5") == {"owner_id": None, "team_id": 5}
    assert answers.scope_columns(viewer(1), "personal") == {"owner_id": 1, "team_id": None}
    with pytest.raises(AnswerRejected):
        answers.scope_columns(viewer(1), "everyone")


# -- stored answers -------------------------------------------------------------------------------

async def _people(core) -> tuple[Viewer, Viewer, Viewer, int, int]:
    async with core.engine.begin() as conn:
        care, other = await ensure_team(conn, "Care"), await ensure_team(conn, "Other")
    kari = await create_user(core.engine, "kari", "correct horse battery", "agent", "Kari", ["Care"])
    ola = await create_user(core.engine, "ola", "correct horse battery", "agent", "Ola", ["Care"])
    lea = await create_user(core.engine, "lea", "correct horse battery", "lead", "Lea")
    return viewer(kari.id, teams=(care,)), viewer(ola.id, teams=(care,)), viewer(lea.id, "lead"), care, other


async def test_search_finds_by_title_body_and_tags_case_insensitively(database_url: str) -> None:
    async with running_core(database_url) as core:
        kari, _, lea, care, _ = await _people(core)
        await answers.create(core.engine, lea, Draft("Refund policy", "We refund within 14 days.", "billing", "en",
                                                     str(care)))
        await answers.create(core.engine, lea, Draft("Opening hours", "We open at 10.", "Hours", "", str(care)))
        await answers.create(core.engine, kari, Draft("My greeting", "Hei {customer_first_name}!", "", "nb"))
        async with core.engine.connect() as conn:
            titles = lambda found: [a.title for a in found]  # noqa: E731
            assert titles(await answers.search(conn, kari, "REFUND")) == ["Refund policy"]
            assert titles(await answers.search(conn, kari, "days")) == ["Refund policy"]
            assert titles(await answers.search(conn, kari, "billing")) == ["Refund policy"]
            assert titles(await answers.search(conn, kari, "we open")) == ["Opening hours"]
            assert titles(await answers.search(conn, kari, "")) == ["My greeting", "Opening hours", "Refund policy"]
            assert titles(await answers.search(conn, kari, "%")) == []        # a wildcard is just a character
            assert titles(await answers.search(conn, kari, "", language="nb")) == ["My greeting", "Opening hours"]


async def test_personal_answers_are_private_and_team_answers_stay_in_their_team(database_url: str) -> None:
    async with running_core(database_url) as core:
        kari, ola, lea, care, other = await _people(core)
        mine = await answers.create(core.engine, kari, Draft("Kari's", "only mine"))
        await answers.create(core.engine, lea, Draft("Other team's", "not for Care", scope=str(other)))
        async with core.engine.connect() as conn:
            assert [a.title for a in await answers.search(conn, ola, "")] == []
            assert [a.title for a in await answers.search(conn, kari, "", team_ids=[care])] == ["Kari's"]
            assert {a.title for a in await answers.search(conn, lea, "")} == {"Other team's"}
        with pytest.raises(LookupError):
            await answers.update(core.engine, ola, mine, Draft("Taken", "over"))
        with pytest.raises(LookupError):
            await answers.delete(core.engine, ola, mine)
        with pytest.raises(LookupError):      # a lead sees every team, yet not an agent's own answers
            await answers.update(core.engine, lea, mine, Draft("Lead's now", "x"))
        async with core.engine.connect() as conn:
            assert (await answers.get(conn, mine)).title == "Kari's"


async def test_an_agent_reads_but_cannot_change_a_team_answer(database_url: str) -> None:
    async with running_core(database_url) as core:
        kari, _, lea, care, _ = await _people(core)
        team_answer = await answers.create(core.engine, lea, Draft("Team", "shared", scope=str(care)))
        with pytest.raises(AnswerRejected, match="team leads and admins"):
            await answers.update(core.engine, kari, team_answer, Draft("Mine now", "x", scope="personal"))
        await answers.update(core.engine, lea, team_answer, Draft("Team v2", "shared, better", "a, B", "en", str(care)))
        async with core.engine.connect() as conn:
            saved = await answers.get(conn, team_answer)
        assert (saved.title, saved.body, saved.tags, saved.language) == ("Team v2", "shared, better", ("a", "b"), "en")
