"""The Telegram connector's webhook side: documented Updates in, exact events out; the secret header."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime

import httpx
import pytest
from harness import check_webhook, fixture_path, load_fixture, run_webhook, webhook_request
from pydantic import ValidationError

from connectors.telegram import TelegramConnector
from socialcrm.cli_tools import add_commands
from socialcrm.connector import (
    Attachment,
    Author,
    InvalidSignature,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)

BOT_TOKEN = "7301234567:AAE3bq7Xb_fake-test-token-8s0dQkL2mZ1"
SECRET = "s3cret_hook-42"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
SIGNED = {"Content-Type": "application/json", HEADER: SECRET}

INGRID = Author("5012345678", "Ingrid Hansen", "ingridh")
SVEN = Author("6023456789", "Sven Nilsson", "svenne")
JAMES = Author("7034567890", "James Walker", None)
NEWS = Author("-1001122334455", "Nordlys Nyheter", "nordlys_news")
BOT = Author("7301234567", "Nordlys Support", "nordlys_support_bot", is_self=True)
SUPER = "-1001987654321"


def nov24(hour: int, minute: int, second: int) -> datetime:
    """Written out by hand, so the expected times do not reuse the code's arithmetic."""
    return datetime(2026, 11, 24, hour, minute, second, tzinfo=UTC)


def ev(kind: str, public: bool, external_id: str, thread: str, author: Author, created_at: datetime,
       text: str = "", **fields: object) -> NormalizedEvent:
    return NormalizedEvent(kind=kind, public=public, external_id=external_id, thread_external_id=thread,
                           author=author, created_at=created_at, text=text, account_id=None, **fields)


#: `from.language_code` of each sender: the language of their Telegram app.
NB, SV, EN = {"language": "nb"}, {"language": "sv"}, {"language": "en"}


def file(kind: str, file_id: str, mime_type: str | None = None) -> Attachment:
    return Attachment(kind, url=None, mime_type=mime_type, name=f"telegram-file:{file_id}")


EXPECTED: dict[str, list[NormalizedEvent]] = {
    "message__private_text": [ev("message", False, "5012345678:42", "5012345678", INGRID, nov24(9, 14, 5),
                                 "Hei! Hvor er pakken min? Ordre 48213.", detail=NB)],
    "message__group": [ev("comment", True, "-4012345678:310", "-4012345678", SVEN, nov24(9, 15, 0),
                          "Har noen andre ventet over en uke på levering?", detail=SV)],
    "message__supergroup_reply": [ev("comment", True, f"{SUPER}:1206", SUPER, JAMES, nov24(9, 16, 0),
                                     "Same here, three weeks and counting.",
                                     in_reply_to_external_id=f"{SUPER}:1205", detail=EN)],
    "channel_post__text": [ev("mention", True, "-1001122334455:77", "-1001122334455", NEWS, nov24(9, 17, 0),
                              "Vi har forsinkelser på leveranser denne uken. Beklager!")],
    # The edit's own time is edit_date, and its id carries it: every later edit is a new change.
    "edited_message__text": [ev("edit", False, "5012345678:42:edit:1795511880", "5012345678", INGRID,
                                nov24(9, 18, 0), "Hei! Hvor er pakken min? Ordrenummer 48213, sendt 12. november.",
                                target_external_id="5012345678:42")],
    "message__photo": [ev("message", False, "6023456789:17", "6023456789", SVEN, nov24(9, 19, 0),
                          "Esken kom knust 😞", attachments=[file("image", "AgACAgQAAxkBAAMRZ0Ph-large")],
                          detail=SV)],
    "message__sticker": [ev("message", False, "5012345678:43", "5012345678", INGRID, nov24(9, 20, 0), "👍",
                            attachments=[file("sticker", "CAACAgIAAxkBAAMrZ0Pi-sticker")], detail=NB)],
    "message__document": [ev("message", False, "7034567890:5", "7034567890", JAMES, nov24(9, 21, 0),
                             "Here is the receipt.",
                             attachments=[file("file", "BQACAgQAAxkBAAMFZ0Pj-receipt", "application/pdf")],
                             detail=EN)],
    "message__voice": [ev("message", False, "5012345678:44", "5012345678", INGRID, nov24(9, 22, 0),
                          attachments=[file("audio", "AwACAgQAAxkBAAMsZ0Pk-voice", "audio/ogg")], detail=NB)],
    "message_reaction__add": [ev("reaction", True, f"{SUPER}:1207:react:7034567890:1795512180:❤", SUPER, JAMES,
                                 nov24(9, 23, 0), target_external_id=f"{SUPER}:1207",
                                 detail={"emoji": "❤", "action": "react", "by": "7034567890"})],
    "message_reaction__remove": [ev("reaction", True, f"{SUPER}:1207:unreact:7034567890:1795512240:❤", SUPER,
                                    JAMES, nov24(9, 24, 0), target_external_id=f"{SUPER}:1207",
                                    detail={"emoji": "❤", "action": "unreact", "by": "7034567890"})],
    # 👍 replaced by 🔥: one event with the person's reaction now (the inbox keeps one per person).
    "message_reaction__change": [ev("reaction", False, "6023456789:18:react:6023456789:1795512300:🔥", "6023456789",
                                    SVEN, nov24(9, 25, 0), target_external_id="6023456789:18",
                                    detail={"emoji": "🔥", "action": "react", "by": "6023456789"})],
    "my_chat_member__kicked": [ev("status", False, "5012345678:my_chat_member:1795512360:kicked", "5012345678",
                                  INGRID, nov24(9, 26, 0), detail={"reachable": False})],
    "my_chat_member__member": [ev("status", False, "5012345678:my_chat_member:1795512420:member", "5012345678",
                                  INGRID, nov24(9, 27, 0), detail={"reachable": True})],
    "message__bot_echo": [ev("echo", False, "5012345678:45", "5012345678", BOT, nov24(9, 28, 0),
                             "Hei Ingrid! Pakken er på vei og kommer i morgen.",
                             in_reply_to_external_id="5012345678:44")],
}


@pytest.fixture(scope="module")
def connector() -> TelegramConnector:
    """Webhook handling is pure, so one instance serves the whole module."""
    return TelegramConnector.from_settings({"bot_token": BOT_TOKEN, "secret_token": SECRET}, httpx.AsyncClient())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_events(connector: TelegramConnector, name: str) -> None:
    events = check_webhook(connector, load_fixture("telegram", name), SIGNED, EXPECTED[name])
    assert all(e.raw["update_id"] == json.loads(load_fixture("telegram", name))["update_id"] for e in events)


@pytest.mark.parametrize("name", ["callback_query__button", "message__service_new_member"])
def test_updates_we_do_not_handle_are_unsupported(connector: TelegramConnector, name: str) -> None:
    with pytest.raises(UnsupportedEvent):
        run_webhook(connector, load_fixture("telegram", name), SIGNED)


@pytest.mark.parametrize(("name", "reason"), [
    ("malformed__no_update_id", "update.update_id is missing or not an integer"),
    ("malformed__message_without_chat", "update 861000018.message.chat is missing or not an object"),
    ("malformed__date_as_string", "update 861000019.message.date is missing or not an integer"),
    ("malformed__not_object", "body is a JSON list, not an Update object"),
    ("malformed__not_json", "body is not JSON"),
])
def test_malformed_names_the_problem_in_one_line(connector: TelegramConnector, name: str, reason: str) -> None:
    with pytest.raises(MalformedPayload) as info:
        run_webhook(connector, load_fixture("telegram", name), SIGNED)
    assert reason in str(info.value) and "\n" not in str(info.value)


def update_with(**message: object) -> bytes:
    base = {"message_id": 9, "date": 1795511645, "from": {"id": 5012345678, "is_bot": False, "first_name": "Kari"},
            "chat": {"id": 5012345678, "type": "private", "first_name": "Kari"}, "text": "hei"}
    return json.dumps({"update_id": 1, "message": {**base, **message}}).encode()


@pytest.mark.parametrize(("body", "reason"), [
    (update_with(message_id="9"), "message.message_id is missing or not an integer"),
    (update_with(date=True), "message.date"),
    (update_with(date=10**15), "out of range"),
    (update_with(chat={"id": 1, "type": "secret"}), "chat.type is not private, group, supergroup or channel"),
    (update_with(text=42), "message.text is not a string"),
    (update_with(photo=[]), "photo is not a non-empty list of PhotoSize objects"),
    (update_with(document={"file_name": "x.pdf"}), "document.file_id is missing"),
    (update_with(**{"from": None}), "has no sender"),
    (json.dumps({"update_id": 1, "message": "hei"}).encode(), "update 1.message is not an object"),
    (json.dumps({"update_id": "1", "message": {}}).encode(), "update.update_id"),
    (b"\xff\xfe{}", "body is not JSON"),
])
def test_wrong_types_are_malformed(connector: TelegramConnector, body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=re.escape(reason)):
        run_webhook(connector, body, SIGNED)


def test_more_media_become_attachments_and_an_animation_is_not_also_a_document(connector) -> None:
    media = {"file_id": "F1", "file_unique_id": "U1", "mime_type": "video/mp4"}
    body = update_with(text=None, animation=media, document=media, caption="gif")
    [event] = run_webhook(connector, body, SIGNED)
    assert event.attachments == [Attachment("video", None, "video/mp4", "telegram-file:F1")]
    [event] = run_webhook(connector, update_with(audio={"file_id": "A1", "file_unique_id": "U2"}), SIGNED)
    assert event.attachments == [Attachment("audio", None, None, "telegram-file:A1")] and event.text == "hei"


def test_anonymous_reaction_is_by_the_chat_and_paid_stars_alone_are_unsupported(connector) -> None:
    chat = {"id": -1001987654321, "type": "supergroup", "title": "Nordlys Community"}
    reaction = {"chat": chat, "message_id": 3, "actor_chat": chat, "date": 1795511645, "old_reaction": [],
                "new_reaction": [{"type": "custom_emoji", "custom_emoji_id": "5368324170671202286"}]}
    body = json.dumps({"update_id": 5, "message_reaction": reaction}).encode()
    [event] = run_webhook(connector, body, SIGNED)
    assert (event.author.external_id, event.detail) == ("-1001987654321", {
        "emoji": "custom_emoji:5368324170671202286", "action": "react", "by": "-1001987654321"})
    paid = json.dumps({"update_id": 6, "message_reaction": {**reaction, "new_reaction": [{"type": "paid"}]}})
    with pytest.raises(UnsupportedEvent):
        run_webhook(connector, paid.encode(), SIGNED)


def test_bot_joining_a_group_is_unsupported(connector: TelegramConnector) -> None:
    bot = {"id": 7301234567, "is_bot": True, "first_name": "Nordlys Support"}
    change = {"chat": {"id": -4012345678, "type": "group", "title": "Nordlys Kundeklubb"}, "date": 1795511645,
              "from": {"id": 6023456789, "is_bot": False, "first_name": "Sven"},
              "old_chat_member": {"user": bot, "status": "left"}, "new_chat_member": {"user": bot, "status": "member"}}
    with pytest.raises(UnsupportedEvent, match="group"):
        run_webhook(connector, json.dumps({"update_id": 7, "my_chat_member": change}).encode(), SIGNED)


def test_a_reply_to_a_forum_topic_opening_is_not_an_answer(connector: TelegramConnector) -> None:
    topic = {"message_id": 2, "date": 1795511000, "chat": {"id": -100, "type": "supergroup"},
             "forum_topic_created": {"name": "Levering", "icon_color": 7322096}}
    body = update_with(chat={"id": -100, "type": "supergroup", "title": "F"}, reply_to_message=topic,
                       is_topic_message=True, message_thread_id=2)
    assert run_webhook(connector, body, SIGNED)[0].in_reply_to_external_id is None


@pytest.mark.parametrize(("old", "new", "expected"), [
    (["👍", "🔥"], ["🔥"], ("react", "🔥")),        # one of two taken away: the one left is the state
    (["👍"], ["👍", "🎉"], ("react", "🎉")),         # one added beside another: the new one
    (["👍", "🔥"], [], ("unreact", "👍")),
])
def test_several_reactions_become_the_persons_reaction_now(connector, old, new, expected) -> None:
    as_types = [{"type": "emoji", "emoji": e} for e in old], [{"type": "emoji", "emoji": e} for e in new]
    reaction = {"chat": {"id": 1, "type": "private"}, "message_id": 3, "user": {"id": 1, "is_bot": False},
                "date": 1795511645, "old_reaction": as_types[0], "new_reaction": as_types[1]}
    [event] = run_webhook(connector, json.dumps({"update_id": 8, "message_reaction": reaction}).encode(), SIGNED)
    assert (event.detail["action"], event.detail["emoji"]) == expected


def test_another_users_bot_is_not_the_brand(connector: TelegramConnector) -> None:
    other_bot = {"id": 999, "is_bot": True, "first_name": "Other"}
    [event] = run_webhook(connector, update_with(**{"from": other_bot}), SIGNED)
    assert (event.kind, event.author.is_self) == ("message", False)


# -- duplicates and order -----------------------------------------------------------------------

def test_a_redelivered_update_maps_to_the_same_ids(connector: TelegramConnector) -> None:
    for name in ("message__private_text", "edited_message__text", "message_reaction__change", "my_chat_member__kicked"):
        first = run_webhook(connector, load_fixture("telegram", name), SIGNED)
        again = run_webhook(connector, load_fixture("telegram", name), SIGNED)
        assert [e.external_id for e in first] == [e.external_id for e in again]


def test_an_edit_before_its_message_targets_the_message_id(connector: TelegramConnector) -> None:
    """Deliveries can come out of order: the edit still names the item the message will create."""
    [edit] = run_webhook(connector, load_fixture("telegram", "edited_message__text"), SIGNED)
    [message] = run_webhook(connector, load_fixture("telegram", "message__private_text"), SIGNED)
    assert edit.target_external_id == message.external_id == "5012345678:42"
    assert edit.external_id != message.external_id and edit.thread_external_id == message.thread_external_id


# -- the secret header ----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {HEADER: "s3cret_hook-43"}, {HEADER: SECRET.upper()}, {HEADER: SECRET + "x"}, {HEADER: ""},
    {HEADER: "sëcret"}, {"Content-Type": "application/json"},
])
def test_a_wrong_or_missing_secret_token_is_rejected(connector: TelegramConnector, headers: dict) -> None:
    with pytest.raises(InvalidSignature) as info:
        connector.verify(webhook_request(load_fixture("telegram", "message__private_text"), headers))
    assert SECRET not in str(info.value)


def test_header_name_is_case_insensitive_and_there_is_no_handshake(connector: TelegramConnector) -> None:
    request = webhook_request(b"", {HEADER.lower(): SECRET}, method="GET", query={"hub.challenge": "x"})
    connector.verify(request)
    assert connector.handshake(request) is None


# -- settings, identity, capabilities -------------------------------------------------------------

def test_settings_hide_secrets_and_default_the_api_base_url() -> None:
    settings = TelegramConnector.Settings.model_validate({"bot_token": BOT_TOKEN, "secret_token": SECRET})
    assert BOT_TOKEN not in repr(settings) and SECRET not in repr(settings) and SECRET not in str(settings)
    assert settings.api_base_url == "https://api.telegram.org"


@pytest.mark.parametrize(("values", "bad"), [
    ({"bot_token": "not-a-token", "secret_token": SECRET}, {"bot_token"}),
    ({"bot_token": BOT_TOKEN, "secret_token": "has:colon"}, {"secret_token"}),
    ({"bot_token": BOT_TOKEN, "secret_token": "a" * 257}, {"secret_token"}),
    ({"bot_token": BOT_TOKEN, "secret_token": ""}, {"secret_token"}),
    ({"bot_token": "7301234567:has space", "secret_token": "sp ace"}, {"bot_token", "secret_token"}),
    ({}, {"bot_token", "secret_token"}),
])
def test_bad_settings_name_the_field_and_never_echo_it(values: dict, bad: set) -> None:
    with pytest.raises(ValidationError) as info:
        TelegramConnector.Settings.model_validate(values)
    assert {e["loc"][0] for e in info.value.errors()} == bad
    for value in values.values():
        assert value in ("",) or value not in str(info.value)


def test_secret_token_edges_are_accepted() -> None:
    for secret in ("a", "A" * 256, "Az09_-"):
        TelegramConnector.Settings.model_validate({"bot_token": BOT_TOKEN, "secret_token": secret})


def test_account_id_capabilities_and_length(connector: TelegramConnector) -> None:
    caps = connector.capabilities
    assert connector.account_id() == "7301234567" and connector.key == "telegram"
    assert caps.webhook and caps.poll and caps.public_replies and caps.private_replies
    assert (caps.max_length(True), caps.max_length(False), caps.reply_window) == (4096, 4096, None)
    assert not caps.deletes and not caps.private_reply_to_public and caps.moderation == frozenset()
    # Characters, as Telegram's server counts them: an emoji outside the BMP is one, not two UTF-16 units.
    assert connector.text_length("😀" * 4096) == 4096 and connector.text_length("hei") == 3


# -- socialcrm parse-webhook ------------------------------------------------------------------------

def parse_webhook(name: str, capsys, secret: str = SECRET) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([
        "parse-webhook", "telegram", "--body", str(fixture_path("telegram", name)),
        "--header", f"{HEADER}: {secret}", "--setting", f"bot_token={BOT_TOKEN}", "--setting", f"secret_token={SECRET}",
    ])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_webhook_prints_the_documented_events(capsys) -> None:
    code, out, err = parse_webhook("message__supergroup_reply", capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == [{
        "kind": "comment", "public": True, "external_id": f"{SUPER}:1206", "thread_external_id": SUPER,
        "in_reply_to_external_id": f"{SUPER}:1205",
        "author": {"external_id": "7034567890", "name": "James Walker", "handle": None, "avatar_url": None,
                   "followers": None, "is_self": False},
        "text": "Same here, three weeks and counting.", "created_at": "2026-11-24T09:16:00.000Z",
        "attachments": [], "target_external_id": None, "detail": {"language": "en"}, "account_id": None,
    }]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_webhook_prints_every_fixture(capsys, name: str) -> None:
    code, out, err = parse_webhook(name, capsys)
    assert (code, err) == (0, "")
    assert [e["external_id"] for e in json.loads(out)] == [e.external_id for e in EXPECTED[name]]
    assert BOT_TOKEN not in out and SECRET not in out


def test_parse_webhook_with_a_wrong_secret_token_exits_2(capsys) -> None:
    code, out, err = parse_webhook("message__photo", capsys, secret="someone-else")
    assert (code, out) == (2, "") and err.startswith("invalid signature: ") and err.count("\n") == 1
    assert SECRET not in err and BOT_TOKEN not in err
