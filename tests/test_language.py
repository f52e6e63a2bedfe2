"""Conversation.language: one normalisation rule for every platform's tag, filled by ingest from
the customer's first message that carries one, never overwritten once known."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from socialcrm import ingest, models
from socialcrm.payload import language_code, language_detail
from tests.support import T0, add_team_and_channel, ev, minutes, running_core

conv_t = models.Conversation.__table__


@pytest.mark.parametrize(("tag", "code"), [
    ("nb", "nb"), ("SV", "sv"), ("en-US", "en"), ("en_US", "en"), (" pt-BR ", "pt"), ("zh-Hant-TW", "zh"),
    ("fil", "fil"), ("yue-HK", "yue"),
])
def test_a_tag_becomes_its_lowercase_primary_subtag(tag: str, code: str) -> None:
    assert language_code(tag) == code
    assert language_detail(tag) == {"language": code}


@pytest.mark.parametrize("tag", [
    None, 42, ["en"], "", "-", "e", "english", "x-klingon", "i-default", "n0", "nø",
    "und", "zxx", "mul", "mis",          # ISO 639 codes that name no language
    "qme", "qht", "qst", "qaa", "qtz",    # private use (X's posts without words)
])
def test_tags_naming_no_language_give_none(tag: object) -> None:
    assert language_code(tag) is None
    assert language_detail(tag) == {}


def test_quechua_is_not_mistaken_for_private_use() -> None:
    assert language_code("qu") == "qu" and language_code("que") == "que"


def lang(code: str) -> dict[str, str]:
    return {"language": code}


async def language_of(engine, thread_key: str) -> str:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(conv_t.c.language).where(conv_t.c.thread_key == thread_key))).scalar_one()


async def apply(core, channel_id: int, events) -> None:
    info = (await core.channels.get(channel_id)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, events)


async def test_a_new_conversation_takes_the_first_messages_language(database_url):
    async with running_core(database_url) as core:
        channel_id = await add_team_and_channel(core)
        await apply(core, channel_id, [
            ev("message", "m-1", "dm-1", detail=lang("nb")),
            ev("message", "m-2", "dm-1", at=T0 + minutes(1), detail=lang("en")),   # same run, later
            ev("comment", "c-1", "post-1", author="cust-2", public=True, detail=lang("sv")),
            ev("message", "m-3", "dm-3", author="cust-3"),                           # the platform said nothing
        ])
        assert await language_of(core.engine, "dm-1") == "nb"
        assert await language_of(core.engine, "post-1#cust-2") == "sv"
        assert await language_of(core.engine, "dm-3") == ""


async def test_an_unknown_language_is_filled_by_a_later_message_and_then_kept(database_url):
    async with running_core(database_url) as core:
        channel_id = await add_team_and_channel(core)
        await apply(core, channel_id, [ev("message", "m-1", "dm-1")])
        assert await language_of(core.engine, "dm-1") == ""
        await apply(core, channel_id, [ev("message", "m-2", "dm-1", at=T0 + minutes(1), detail=lang("sv"))])
        assert await language_of(core.engine, "dm-1") == "sv"
        await apply(core, channel_id, [ev("message", "m-3", "dm-1", at=T0 + minutes(2), detail=lang("en")),
                                       ev("message", "m-4", "dm-1", at=T0 + minutes(3))])
        assert await language_of(core.engine, "dm-1") == "sv"


async def test_a_language_is_filled_within_one_run_when_the_first_item_has_none(database_url):
    async with running_core(database_url) as core:
        channel_id = await add_team_and_channel(core)
        await apply(core, channel_id, [ev("message", "m-1", "dm-1"),
                                       ev("message", "m-2", "dm-1", at=T0 + minutes(1), detail=lang("nb"))])
        assert await language_of(core.engine, "dm-1") == "nb"


async def test_the_brands_echo_does_not_set_the_customers_language(database_url):
    """The brand wrote first from the app: the conversation's language is the customer's, later."""
    async with running_core(database_url) as core:
        channel_id = await add_team_and_channel(core)
        await apply(core, channel_id, [ev("echo", "e-1", "dm-1", author="brand", is_self=True, detail=lang("en"))])
        assert await language_of(core.engine, "dm-1") == ""
        await apply(core, channel_id, [ev("message", "m-1", "dm-1", at=T0 + minutes(1), detail=lang("nb"))])
        assert await language_of(core.engine, "dm-1") == "nb"


async def test_ingest_normalises_what_a_connector_hands_over(database_url):
    """A connector that skipped the helper cannot store a region or an over-long value."""
    async with running_core(database_url) as core:
        channel_id = await add_team_and_channel(core)
        await apply(core, channel_id, [ev("message", "m-1", "dm-1", detail=lang("en-US")),
                                       ev("message", "m-2", "dm-2", author="cust-2", detail=lang("x" * 40)),
                                       ev("message", "m-3", "dm-2", author="cust-2", at=T0 + minutes(1),
                                          detail={"language": None})])
        assert await language_of(core.engine, "dm-1") == "en"
        assert await language_of(core.engine, "dm-2") == ""
