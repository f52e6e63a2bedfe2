"""`detail["language"]` from the documented fields: Telegram `from.language_code`, Mastodon
`status.language`, Bluesky `record.langs[0]`, X `lang`; always the lowercase primary subtag.

Each test parses a stored fixture through the connector's own pure parser; a variant changes
only the language field, so what is tested is where the language comes from.
"""

from __future__ import annotations

import json

import pytest
from harness import load_fixture

from connectors.bluesky.normalize import Context, fresh_items, parse_items
from connectors.mastodon.normalize import parse_notifications
from connectors.telegram.normalize import parse_update
from connectors.x.mentions import TWEET_FIELDS, build_mention, read_page
from connectors.x.normalize import parse_body, parse_delivery

TELEGRAM_BOT = "7301234567"
MASTODON_BRAND = "109876543210987654"
BLUESKY = Context(self_did="did:plc:brandzz5kq3ocvxn7wuyi2hf", account_id="nordlysko.bsky.social")
X_BRAND = "1402378515127390211"


def fixture(key: str, name: str):
    return json.loads(load_fixture(key, name))


def languages(events) -> list[str | None]:
    return [e.detail.get("language") for e in events]


# -- Telegram -----------------------------------------------------------------------------------

def test_telegram_takes_the_senders_app_language_not_the_replied_to_persons() -> None:
    update = fixture("telegram", "message__supergroup_reply")   # from: "en"; reply_to_message.from: "sv"
    assert languages(parse_update(update, TELEGRAM_BOT)) == ["en"]


@pytest.mark.parametrize(("tag", "expected"), [("nb", "nb"), ("en-GB", "en"), ("pt_BR", "pt"), ("", None)])
def test_telegram_language_code_is_normalised(tag: str, expected: str | None) -> None:
    update = fixture("telegram", "message__private_text")
    update["message"]["from"]["language_code"] = tag
    [event] = parse_update(update, TELEGRAM_BOT)
    assert event.detail.get("language") == expected


def test_telegram_without_language_code_or_speaking_for_a_chat_has_none() -> None:
    update = fixture("telegram", "message__private_text")
    del update["message"]["from"]["language_code"]
    assert languages(parse_update(update, TELEGRAM_BOT)) == [None]
    assert languages(parse_update(fixture("telegram", "channel_post__text"), TELEGRAM_BOT)) == [None]


# -- Mastodon -----------------------------------------------------------------------------------

def test_mastodon_takes_status_language() -> None:
    page = fixture("mastodon", "notifications__mention_public")        # statuses in "en" and "nb"
    events = parse_notifications(page, MASTODON_BRAND)
    assert {e.external_id: e.detail.get("language") for e in events} == {
        "113500000000000100": "nb", "113500000000000200": "en"}


def test_mastodon_null_language_gives_none() -> None:
    page = fixture("mastodon", "notifications__mention_direct")
    assert languages(parse_notifications(page, MASTODON_BRAND)) == ["sv"]
    page[0]["status"]["language"] = None          # the API allows null
    [event] = parse_notifications(page, MASTODON_BRAND)
    assert "language" not in event.detail


# -- Bluesky ------------------------------------------------------------------------------------

def bluesky_posts(page: dict) -> dict[str, str | None]:
    events = parse_items(fresh_items(page["notifications"], None), BLUESKY)
    return {e.author.handle: e.detail.get("language") for e in events if e.kind != "reaction"}


def test_bluesky_takes_record_langs() -> None:
    assert bluesky_posts(fixture("bluesky", "list_notifications__mentions")) == {
        "ingridh.bsky.social": "nb", "svenne.bsky.social": "sv", "jwalker.bsky.social": "en"}


def test_bluesky_takes_the_first_of_several_langs_and_none_without_langs() -> None:
    page = fixture("bluesky", "list_notifications__mentions")
    records = {n["author"]["handle"]: n["record"] for n in page["notifications"]
               if n["reason"] in ("mention", "reply", "quote")}
    records["jwalker.bsky.social"]["langs"] = ["pt-BR", "en"]
    records["svenne.bsky.social"]["langs"] = []
    del records["ingridh.bsky.social"]["langs"]
    assert bluesky_posts(page) == {"jwalker.bsky.social": "pt", "svenne.bsky.social": None,
                                   "ingridh.bsky.social": None}


# -- X ------------------------------------------------------------------------------------------

def test_x_webhook_post_takes_lang_and_dms_have_none() -> None:
    delivery, data = parse_body(load_fixture("x", "tweet_create__reply_to_brand"))
    assert languages(parse_delivery(data, delivery)) == ["sv"]
    delivery, data = parse_body(load_fixture("x", "direct_message__text"))
    assert languages(parse_delivery(data, delivery)) == [None]


def test_x_undetermined_or_wordless_lang_gives_none() -> None:
    for lang in ("und", "qme", "zxx", None):
        body = fixture("x", "tweet_create__mention")
        body["tweet_create_events"][0]["lang"] = lang
        delivery, data = parse_body(json.dumps(body).encode())
        [event] = parse_delivery(data, delivery)
        assert "language" not in event.detail, lang


def test_x_polling_asks_for_lang_and_reads_it() -> None:
    assert "lang" in TWEET_FIELDS.split(",")
    tweets, users, _ = read_page(fixture("x", "mentions__page_1"))
    events = [build_mention(t, users, X_BRAND) for t in tweets]
    assert languages(events) == ["sv", "no"]
