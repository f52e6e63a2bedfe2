"""The Instagram connector's webhooks: documented payloads in, exact events out; signatures, handshake."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import re
from datetime import UTC, datetime

import httpx
import pytest
from harness import (
    check_webhook,
    fixture_path,
    load_fixture,
    run_webhook,
    webhook_request,
)
from pydantic import ValidationError

from connectors.instagram import InstagramConnector
from socialcrm.cli_tools import add_commands
from socialcrm.connector import (
    Attachment,
    Author,
    InvalidSignature,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)

SECRET = "ig-app-secret-5d1"
VERIFY = "ig-verify-token-83c"
TOKEN = "ig-access-token-c0ffee"
ACCOUNT = "17841405822304914"
ACCOUNT2 = "17841400000000777"
CUSTOMER = "7130482395716248"
MEDIA = "18050310947722369"
C1 = "17867301270523379"
MID = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE0OjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI1ODU5OTE3NTI2OTQwODg3NjozMjUw"
M1, M2, M3, M4 = (MID + s for s in ("MzYxNzM3ODgxMjk0MTEzNTc2", "MzYxNzM3ODgxMjk0MTEzNTc3",
                                    "MzYxNzM3ODgxMjk0MTEzNTc4", "MzYxNzM3ODgxMjk0MTEzNTc5"))
SETTINGS = {"app_secret": SECRET, "verify_token": VERIFY, "access_token": TOKEN, "ig_user_id": ACCOUNT}

SVEN = Author("848067418322071", handle="sven.nilsson")
ASTRID = Author("915432778102934", handle="astrid.odegard")
KUNDE = Author(CUSTOMER)


def nov24(hour: int, minute: int, second: int, ms: int = 0) -> datetime:
    """Written out by hand, so the expected times do not reuse the code's arithmetic."""
    return datetime(2026, 11, 24, hour, minute, second, ms * 1000, tzinfo=UTC)


def ev(kind: str, public: bool, external_id: str, thread: str, author: Author, created_at: datetime,
       text: str = "", account: str = ACCOUNT, **fields: object) -> NormalizedEvent:
    return NormalizedEvent(kind=kind, public=public, external_id=external_id, thread_external_id=thread,
                           author=author, created_at=created_at, text=text, account_id=account, **fields)


EXPECTED: dict[str, list[NormalizedEvent]] = {
    # DMs: timestamps are epoch milliseconds; the thread is the customer's IGSID.
    "dm__text": [ev("message", False, M1, CUSTOMER, KUNDE, nov24(9, 15, 30, 123),
                    "Hej! Var är min beställning? Ordernummer 48213.")],
    "dm__image": [ev("message", False, M2, CUSTOMER, KUNDE, nov24(9, 16, 2, 450), attachments=[Attachment(
        "image", "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17900000000000001&signature=AbCdEf")])],
    # The brand's own DM (sent from the Instagram app): thread = the recipient, author is the brand.
    "echo__dm": [ev("echo", False, M3, CUSTOMER, Author(ACCOUNT, is_self=True), nov24(9, 20, 11, 7),
                    "Hei! Pakken er på vei og kommer i morgen.")],
    "delete__unsend": [ev("delete", False, f"{M1}:delete", CUSTOMER, KUNDE, nov24(9, 21, 0), target_external_id=M1)],
    "reaction__react": [ev("reaction", False, f"{M3}:reaction:{CUSTOMER}:1795512165300", CUSTOMER, KUNDE,
                           nov24(9, 22, 45, 300), target_external_id=M3,
                           detail={"emoji": "❤️", "action": "react", "by": CUSTOMER})],
    "reaction__unreact": [ev("reaction", False, f"{M3}:reaction:{CUSTOMER}:1795512190010", CUSTOMER, KUNDE,
                             nov24(9, 23, 10, 10), target_external_id=M3,
                             detail={"emoji": "", "action": "unreact", "by": CUSTOMER})],
    "read__seen": [ev("read", False, f"{M3}:read:{CUSTOMER}", CUSTOMER, KUNDE, nov24(9, 24, 0, 999),
                      target_external_id=M3)],
    # Comments carry no time of their own: entry.time, epoch seconds. Thread = the media.
    "comment__top_level": [ev("comment", True, C1, MEDIA, SVEN, nov24(10, 2, 13),
                              "Samma problem här, ingen leverans än.", in_reply_to_external_id=MEDIA)],
    "comment__reply": [ev("comment", True, "17912044110293847", MEDIA, ASTRID, nov24(10, 5, 40),
                          "Samme her 😩 Tre uker nå.", in_reply_to_external_id=C1)],
    "echo__own_comment": [ev("echo", True, "17999000000000042", MEDIA,
                             Author(ACCOUNT, handle="nordicbrand", is_self=True), nov24(10, 7, 5),
                             "Beklager! Vi har sendt deg en DM.", in_reply_to_external_id=C1)],
    "comment__live": [ev("comment", True, "17855500000000001", "18130000000000555", SVEN, nov24(10, 30, 0),
                         "Finns den i storlek M?", in_reply_to_external_id="18130000000000555")],
    # Ids only: hydrate() fetches text, author and time (test_instagram_api.py).
    "mention__ids_only": [ev("mention", True, "17894227972186120", "17918195224117851",
                             Author("unknown:17894227972186120"), nov24(10, 31, 0),
                             in_reply_to_external_id="17918195224117851", detail={"needs_fetch": True})],
    # Two accounts in one delivery: each event names its own; the postback is skipped.
    "batch__two_accounts": [
        ev("message", False, M4, CUSTOMER, KUNDE, nov24(11, 0, 0), "Hallo?"),
        ev("comment", True, "17800000000000009", "18000000000000333", SVEN, nov24(11, 0, 1),
           "Når åpner butikken i Bergen?", account=ACCOUNT2, in_reply_to_external_id="18000000000000333"),
    ],
    # A DM without its mid and a comment without `from` are skipped; the rest still arrive.
    "batch__bad_item": [
        ev("message", False, M4, CUSTOMER, KUNDE, nov24(11, 0, 0), "Hallo?"),
        ev("read", False, f"{M3}:read:{CUSTOMER}", CUSTOMER, KUNDE, nov24(11, 0, 0, 300), target_external_id=M3),
        ev("comment", True, "17800000000000011", MEDIA, ASTRID, nov24(11, 0, 1), "Hallå?",
           in_reply_to_external_id=MEDIA),
    ],
}


@pytest.fixture(scope="module")
def connector() -> InstagramConnector:
    """Webhook handling is pure, so one instance serves the whole module."""
    return InstagramConnector.from_settings(SETTINGS, httpx.AsyncClient())


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """What Meta sends; computed here independently of the connector and of meta_common."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def signed(name: str) -> tuple[bytes, dict[str, str]]:
    body = load_fixture("instagram", name)
    return body, sign(body)


def delivery(*entries: dict) -> bytes:
    return json.dumps({"object": "instagram", "entry": list(entries)}).encode()


def dm_entry(**message: object) -> dict:
    item = {"sender": {"id": CUSTOMER}, "recipient": {"id": ACCOUNT}, "timestamp": 1795511730123,
            "message": {"mid": "m.1", "text": "hei", **message}}
    return {"id": ACCOUNT, "time": 1795511730500, "messaging": [item]}


def comment_entry(time: object = 1795514533, **value: object) -> dict:
    change = {"field": "comments", "value": {"from": {"id": "1", "username": "u"}, "media": {"id": MEDIA},
                                             "id": "c.1", "text": "hei", **value}}
    return {"id": ACCOUNT, "time": time, "changes": [change]}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_the_documented_events(connector: InstagramConnector, name: str) -> None:
    check_webhook(connector, *signed(name), EXPECTED[name])


def test_raw_is_the_item_each_event_came_from(connector: InstagramConnector) -> None:
    body, headers = signed("batch__two_accounts")
    message, comment = run_webhook(connector, body, headers)
    data = json.loads(body)
    assert message.raw == data["entry"][0]["messaging"][0]
    assert comment.raw == data["entry"][1]["changes"][0]


def test_a_redelivery_gives_the_same_ids(connector: InstagramConnector) -> None:
    for name in ("dm__text", "reaction__react", "read__seen", "delete__unsend", "comment__reply", "mention__ids_only"):
        first, second = (run_webhook(connector, *signed(name)) for _ in range(2))
        assert [e.external_id for e in first] == [e.external_id for e in second], name


def test_each_event_names_the_account_it_was_delivered_for(connector: InstagramConnector) -> None:
    events = run_webhook(connector, *signed("batch__two_accounts"))
    assert [e.account_id for e in events] == [ACCOUNT, ACCOUNT2]
    assert connector.account_id() == ACCOUNT


def test_skipped_items_are_logged_in_one_line_each(connector: InstagramConnector, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="connectors.instagram"):
        run_webhook(connector, *signed("batch__bad_item"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "messaging[1]: message.mid is missing" in lines[0] and "changes[0]: value.from is missing" in lines[1]


def test_a_delivery_with_nothing_readable_is_malformed(connector: InstagramConnector) -> None:
    body = delivery(dm_entry(mid=None), {"id": 17841405822304914, "messaging": []})
    with pytest.raises(MalformedPayload, match=r"messaging\[0\]: message.mid is missing"):
        run_webhook(connector, body, sign(body))


@pytest.mark.parametrize(("name", "reason"), [
    ("malformed__not_json", "body is not JSON"),
    ("malformed__wrong_object", "object is 'page', expected 'instagram'"),
    ("malformed__no_entry", "'entry' list"),
])
def test_malformed_body_is_refused_in_one_line(connector: InstagramConnector, name: str, reason: str) -> None:
    with pytest.raises(MalformedPayload) as info:
        run_webhook(connector, *signed(name))
    assert reason in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("entry", "reason"), [
    (dm_entry(mid=17), "message.mid is missing or not a non-empty string"),
    (dm_entry(text=["x"]), "message.text is not a string"),
    (dm_entry(attachments={"type": "image"}), "attachments is not a list of objects"),
    (dm_entry(attachments=[{"payload": {"url": "https://x"}}]), "attachment.type is missing"),
    ({**dm_entry(), "messaging": [{**dm_entry()["messaging"][0], "timestamp": "1795511730123"}]}, "timestamp"),
    ({**dm_entry(), "messaging": [{**dm_entry()["messaging"][0], "timestamp": True}]}, "timestamp"),
    ({**dm_entry(), "messaging": [{**dm_entry()["messaging"][0], "sender": {"id": 7130482395716248}}]},
     "sender.id is missing"),
    ({"id": ACCOUNT, "messaging": [{"sender": {"id": CUSTOMER}, "timestamp": 1, "reaction": {"mid": "m", "action": "x"}}]},
     'reaction.action is not "react" or "unreact"'),
    (comment_entry(time=None), "time is missing, and the item has no timestamp"),
    (comment_entry(media={}), "value.media.id is missing"),
    ({"id": ACCOUNT, "time": 1, "changes": ["comments"]}, "changes[0] is not an object"),
    ({"id": ACCOUNT, "messaging": [None]}, "messaging[0] is not an object"),
    ({"time": 1, "messaging": []}, "entry[0].id is missing"),
])
def test_wrong_types_skip_the_item(connector: InstagramConnector, entry: dict, reason: str) -> None:
    body = delivery(entry)
    with pytest.raises(MalformedPayload, match=re.escape(reason)):
        run_webhook(connector, body, sign(body))


def test_unknown_field_is_unsupported(connector: InstagramConnector) -> None:
    with pytest.raises(UnsupportedEvent, match="story_insights"):
        run_webhook(connector, *signed("unknown__field"))


def test_a_caption_mention_without_comment_id_is_unsupported(connector: InstagramConnector) -> None:
    body = delivery({"id": ACCOUNT, "time": 1795516260, "changes": [{"field": "mentions", "value": {"media_id": "1"}}]})
    with pytest.raises(UnsupportedEvent, match="mentions"):
        run_webhook(connector, body, sign(body))


def test_comment_time_in_milliseconds_is_recognised(connector: InstagramConnector) -> None:
    body = delivery(comment_entry(time=1795514533000))
    [event] = run_webhook(connector, body, sign(body))
    assert event.created_at == nov24(10, 2, 13)


def test_a_comment_with_its_own_timestamp_uses_it(connector: InstagramConnector) -> None:
    body = delivery(comment_entry(timestamp="2026-11-24T10:01:59+0000"))
    [event] = run_webhook(connector, body, sign(body))
    assert event.created_at == nov24(10, 1, 59)


def test_unstorable_characters_become_replacement_characters(connector: InstagramConnector) -> None:
    body = b'{"object": "instagram", "entry": [{"id": "1", "time": 1795514533, "changes": [{"field": "comments", ' \
           b'"value": {"from": {"id": "2"}, "media": {"id": "3"}, "id": "4", "text": "half \\ud83d and nul \\u0000"}}]}]}'
    [event] = run_webhook(connector, body, sign(body))
    assert event.text == "half \ufffd and nul "
    json.dumps(event.raw, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate


# -- signatures and handshake -------------------------------------------------------------

def test_signature_with_another_secret_is_rejected(connector: InstagramConnector) -> None:
    body = load_fixture("instagram", "dm__text")
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body, sign(body, "someone-else"))


@pytest.mark.parametrize("headers", [{}, {"X-Hub-Signature": "sha1=0123"}, {"X-Hub-Signature-256": ""}])
def test_missing_signature_is_rejected(connector: InstagramConnector, headers: dict) -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        run_webhook(connector, load_fixture("instagram", "dm__text"), headers)


def test_signature_over_reserialized_json_is_rejected(connector: InstagramConnector) -> None:
    """Meta signs the escaped form (\\u00e4): a re-dump with the real characters is other bytes."""
    body = load_fixture("instagram", "dm__text")
    assert b"Var \\u00e4r min best\\u00e4llning" in body
    reserialized = json.dumps(json.loads(body), ensure_ascii=False).encode()
    assert json.loads(reserialized) == json.loads(body) and reserialized != body
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body, sign(reserialized))


def test_signature_must_cover_every_byte(connector: InstagramConnector) -> None:
    body = load_fixture("instagram", "comment__top_level")
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body + b"\n", sign(body))


def test_handshake_answers_the_challenge_for_the_right_token(connector: InstagramConnector) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    answer = connector.handshake(webhook_request(b"", {}, method="GET", query=query))
    assert (answer.status, answer.body, answer.content_type) == (200, "1158201444", "text/plain")


@pytest.mark.parametrize("query", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
])
def test_handshake_with_a_wrong_token_is_refused(connector: InstagramConnector, query: dict) -> None:
    answer = connector.handshake(webhook_request(b"", {}, method="GET", query=query))
    assert answer.status == 403 and VERIFY not in answer.body


def test_a_get_without_challenge_is_not_a_handshake(connector: InstagramConnector) -> None:
    assert connector.handshake(webhook_request(b"", {}, method="GET", query={"hub.verify_token": VERIFY})) is None


# -- settings, capabilities ---------------------------------------------------------------

def test_settings_hide_secrets_and_default_the_graph_host() -> None:
    settings = InstagramConnector.Settings.model_validate(SETTINGS)
    assert SECRET not in repr(settings) and TOKEN not in repr(settings) and VERIFY not in repr(settings)
    assert (settings.api_base_url, settings.api_version, settings.page_id) == ("https://graph.facebook.com", "v26.0", None)


@pytest.mark.parametrize(("change", "field"), [
    ({"ig_user_id": "17841/../me"}, "ig_user_id"), ({"page_id": "me"}, "page_id"),
    ({"access_token": ""}, "access_token"), ({"api_version": "latest"}, "api_version"),
])
def test_settings_refuse_unsafe_values(change: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        InstagramConnector.Settings.model_validate({**SETTINGS, **change})
    assert {e["loc"][0] for e in info.value.errors()} == {field}


def test_capabilities_and_length_in_utf8_bytes(connector: InstagramConnector) -> None:
    caps = connector.capabilities
    assert (caps.max_length(False), caps.max_length(True)) == (1000, 2200)
    assert (caps.reply_window.total_seconds(), caps.human_agent_window.days, caps.private_reply_window.days) == (86400, 7, 7)
    assert caps.private_reply_to_public and caps.webhook and caps.poll
    assert caps.moderation == {"hide", "unhide", "delete"}
    assert connector.text_length("hej", public=False) == 3
    # DMs: UTF-8 bytes; public comment replies: characters
    assert connector.text_length("å" * 500, public=False) == 1000 and connector.text_length("😩" * 250, public=False) == 1000
    assert connector.text_length("å" * 500, public=True) == 500


# -- socialcrm parse-webhook ----------------------------------------------------------------

CLI_SETTINGS = ["--setting", f"app_secret={SECRET}", "--setting", f"verify_token={VERIFY}",
                "--setting", f"access_token={TOKEN}", "--setting", f"ig_user_id={ACCOUNT}"]


def cli(name: str, capsys, *, secret: str = SECRET) -> tuple[int, str, str]:
    body = load_fixture("instagram", name)
    argv = ["parse-webhook", "instagram", "--body", str(fixture_path("instagram", name)),
            "--header", f"X-Hub-Signature-256: {sign(body, secret)['X-Hub-Signature-256']}", *CLI_SETTINGS]
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_webhook_prints_the_documented_events(capsys) -> None:
    code, out, err = cli("comment__reply", capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == [{
        "kind": "comment", "public": True, "external_id": "17912044110293847", "thread_external_id": MEDIA,
        "in_reply_to_external_id": C1,
        "author": {"external_id": "915432778102934", "name": None, "handle": "astrid.odegard", "avatar_url": None,
                   "followers": None, "is_self": False},
        "text": "Samme her 😩 Tre uker nå.", "created_at": "2026-11-24T10:05:40.000Z", "attachments": [],
        "target_external_id": None, "detail": {}, "account_id": ACCOUNT,
    }]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_webhook_prints_every_fixture(capsys, name: str) -> None:
    code, out, err = cli(name, capsys)
    assert (code, err) == (0, "")
    assert [e["external_id"] for e in json.loads(out)] == [e.external_id for e in EXPECTED[name]]


def test_parse_webhook_with_a_bad_signature_exits_2_with_one_line(capsys) -> None:
    code, out, err = cli("dm__text", capsys, secret="not-the-app-secret")
    assert (code, out) == (2, "")
    assert err.startswith("invalid signature: ") and err.count("\n") == 1
    assert SECRET not in err and TOKEN not in err
