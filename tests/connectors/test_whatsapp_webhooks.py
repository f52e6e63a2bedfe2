"""WhatsApp Cloud API webhooks through the contract: documented payloads in, exact events out."""

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
from harness import check_webhook, fixture_path, load_fixture, run_webhook, webhook_request

from connectors.whatsapp import WhatsAppConnector
from socialcrm.cli_tools import add_commands, event_to_json
from socialcrm.connector import (
    Attachment,
    Author,
    InvalidSignature,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)

APP_SECRET = "wa-app-secret-5c1e"
VERIFY_TOKEN = "wa-verify-token-77d"
ACCESS_TOKEN = "EAAwa-access-token-0b9"
NUMBER_A, NUMBER_B = "110200300400500", "110200300400600"
SETTINGS = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "access_token": ACCESS_TOKEN,
            "phone_number_id": NUMBER_A, "api_base_url": "https://graph.test"}

INGRID = Author("4791234567", "Ingrid Hansen")
SVEN = Author("46701234567", "Sven Nilsson")
ASA = Author("46739876543", "Åsa Lindqvist")
KARI = Author("NO.1502576394655843", "Kari", handle="@kari.n")
OUR1 = "wamid.HBgKNDc5MTIzNDU2NxUCABEYEjdCNDQwMUFCQ0RFRjAxMjM0AA=="   # messages we sent earlier
OUR2 = "wamid.HBgLNDY3MDEyMzQ1NjcVAgARGBI5QTFCMkMzRDRFNUY2MDcxODIA"


def wamid(n: str) -> str:
    """The customers' message ids in the fixtures differ in one letter."""
    return f"wamid.HBgKNDc5MTIzNDU2NxUCABIYFjNFQjA{n}QUJDMTIzNDU2Nzg5MEFCQwA="


def nov24(hour: int, minute: int, second: int = 0) -> datetime:
    """Written out by hand: 2026-11-24 08:15:00 UTC is epoch second 1795508100 in the fixtures."""
    return datetime(2026, 11, 24, hour, minute, second, tzinfo=UTC)


def msg(n: str, author: Author, at: datetime, text: str = "", account: str = NUMBER_A, **fields) -> NormalizedEvent:
    return NormalizedEvent(kind="message", public=False, external_id=wamid(n), thread_external_id=author.external_id,
                           author=author, created_at=at, text=text, account_id=account, **fields)


def status(target: str, state: str, recipient: str, at: datetime, account: str = NUMBER_A,
           **detail: str) -> NormalizedEvent:
    return NormalizedEvent(kind="status", public=False, external_id=f"{target}:{state}", thread_external_id=recipient,
                           author=Author(recipient), created_at=at, target_external_id=target,
                           detail={"status": state, **detail}, account_id=account)


def reaction(n: str, at: datetime, emoji: str, action: str) -> NormalizedEvent:
    return NormalizedEvent(kind="reaction", public=False, external_id=wamid(n), thread_external_id=INGRID.external_id,
                           author=INGRID, created_at=at, target_external_id=OUR1, account_id=NUMBER_A,
                           detail={"emoji": emoji, "action": action, "by": INGRID.external_id})


def media(kind: str, media_id: str, mime: str, name: str | None = None) -> list[Attachment]:
    return [Attachment(kind, f"whatsapp-media:{media_id}", mime, name)]


STOCKHOLM = "https://www.openstreetmap.org/?mlat=59.3326&mlon=18.0649"
RE_ENGAGEMENT = ("More than 24 hours have passed since the customer last wrote: only an approved template "
                 "can be sent. (error 131047)")

EXPECTED: dict[str, list[NormalizedEvent]] = {
    "message__text": [msg("A", INGRID, nov24(8, 15),
                          "Hei! Pakken min har ikke kommet. Ordrenummer 48213, på vei siden fredag. Hva skjer?")],
    "message__image_caption": [msg("B", ASA, nov24(8, 16), "Så här såg kartongen ut när den kom 😞",
                                   attachments=media("image", "1480952243029470", "image/jpeg"))],
    "message__document": [msg("C", SVEN, nov24(8, 17),
                              attachments=media("file", "2291467304582118", "application/pdf", "kvitto-48213.pdf"))],
    "message__sticker": [msg("D", INGRID, nov24(8, 18), attachments=media("sticker", "1098445120573325", "image/webp"))],
    "message__location": [msg("E", SVEN, nov24(8, 19),
                              "📍 Utlämningsställe Åhléns City, Drottninggatan 53, 111 21 Stockholm (59.3326, 18.0649)",
                              attachments=[Attachment("location", STOCKHOLM, None, "Utlämningsställe Åhléns City")])],
    "message__quoted_reply": [msg("F", INGRID, nov24(8, 20), "Ja, det var den ordren. Takk!", in_reply_to_external_id=OUR1)],
    "reaction__react": [reaction("G", nov24(8, 21), "👍", "react")],
    "reaction__removed": [reaction("H", nov24(8, 22), "", "unreact")],  # WhatsApp leaves `emoji` out
    "interactive__button_reply": [msg("I", SVEN, nov24(8, 23), "Ny leveransdag", in_reply_to_external_id=OUR2)],
    "interactive__list_reply": [msg("J", SVEN, nov24(8, 24), "Åhléns City", in_reply_to_external_id=OUR2)],
    "button__quick_reply": [msg("K", INGRID, nov24(8, 25), "Spor pakken", in_reply_to_external_id=OUR1)],
    "unsupported__poll": [msg("L", ASA, nov24(8, 26), "(unsupported message: poll_creation)")],
    "order__cart": [msg("M", SVEN, nov24(8, 27), "(unsupported message: order)")],
    "contacts__shared": [msg("N", INGRID, nov24(8, 28), "👤 Ola Nordmann +47 912 34 567")],
    # A customer with a username: no wa_id, the business-scoped user id is the thread.
    "message__bsuid_only": [msg("O", KARI, nov24(8, 29), "Hei, jeg bruker brukernavn nå. Kan dere sjekke ordre 50017?")],
    "status__sent": [status(OUR1, "sent", INGRID.external_id, nov24(8, 30))],
    "status__delivered": [status(OUR1, "delivered", INGRID.external_id, nov24(8, 30, 5))],
    "status__read": [status(OUR1, "read", INGRID.external_id, nov24(8, 31))],
    "status__failed": [status(OUR2, "failed", SVEN.external_id, nov24(8, 32), error=RE_ENGAGEMENT)],
    # Two WhatsApp Business Accounts, two numbers, one delivery: every event names its number.
    "batch__two_numbers": [
        msg("P", INGRID, nov24(8, 33), "Hallo igjen, noe nytt om pakken?"),
        msg("Q", SVEN, nov24(8, 33, 1), "Och min beställning?"),
        msg("R", ASA, nov24(8, 33, 2), "Hej! Har ni jackan i storlek S?", account=NUMBER_B),
        status(OUR2, "delivered", ASA.external_id, nov24(8, 33, 3), account=NUMBER_B),
    ],
    # A message without id, a status with an unreadable timestamp and a change that is not an
    # object are skipped; everything else in the delivery arrives.
    "batch__one_bad_item": [
        msg("S", INGRID, nov24(8, 34), "Første"),
        msg("U", SVEN, nov24(8, 34, 2), "Tredje"),
        status(OUR1, "delivered", INGRID.external_id, nov24(8, 34, 4)),
    ],
}


def sign(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    """What Meta sends, computed here independently of the connector."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def signed(name: str) -> tuple[bytes, dict[str, str]]:
    body = load_fixture("whatsapp", name)
    return body, sign(body)


@pytest.fixture(scope="module")
def connector() -> WhatsAppConnector:
    """Webhook handling is pure, so one instance serves the whole module."""
    return WhatsAppConnector.from_settings(SETTINGS, httpx.AsyncClient())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_events(connector: WhatsAppConnector, name: str) -> None:
    check_webhook(connector, *signed(name), EXPECTED[name])


def test_raw_is_the_message_or_status_each_event_came_from(connector: WhatsAppConnector) -> None:
    events = run_webhook(connector, *signed("batch__two_numbers"))
    assert [e.raw["id"] for e in events] == [wamid("P"), wamid("Q"), wamid("R"), OUR2]
    assert events[3].raw["status"] == "delivered"


def test_one_bad_item_is_logged_and_skipped(connector: WhatsAppConnector, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="connectors.whatsapp.normalize"):
        events = run_webhook(connector, *signed("batch__one_bad_item"))
    assert len(events) == 3
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 3
    assert any("a message without id: id is missing" in line for line in skipped)
    assert any(".timestamp is missing or not a string of epoch seconds" in line for line in skipped)
    assert any("entry[0].changes[1].value is missing" in line for line in skipped)


def test_duplicate_delivery_gives_the_same_ids(connector: WhatsAppConnector) -> None:
    """Meta redelivers for days; the core dedupes on these ids, so they must not change."""
    for name in ("batch__two_numbers", "reaction__removed", "status__failed"):
        first = [e.external_id for e in run_webhook(connector, *signed(name))]
        again = [e.external_id for e in run_webhook(connector, *signed(name))]
        assert first == again and len(set(first)) == len(first)


def test_a_status_may_arrive_before_our_send_returned(connector: WhatsAppConnector) -> None:
    """Parsing does not need our message: the core keeps the status until the wamid is known."""
    [event] = run_webhook(connector, *signed("status__delivered"))
    assert (event.kind, event.target_external_id, event.detail) == ("status", OUR1, {"status": "delivered"})


@pytest.mark.parametrize(("name", "reason"), [
    ("system__number_changed", "system message (user_changed_number) not shown"),
    ("unknown__field", "webhook field 'message_template_status_update' is not handled"),
])
def test_understood_but_unhandled_is_unsupported(connector: WhatsAppConnector, name: str, reason: str) -> None:
    with pytest.raises(UnsupportedEvent, match=re.escape(reason)):
        run_webhook(connector, *signed(name))


@pytest.mark.parametrize(("name", "reason"), [
    ("malformed__not_json", "body is not JSON"),
    ("malformed__wrong_object", "object is 'page', expected 'whatsapp_business_account'"),
    ("malformed__missing_id", "a message without id: id is missing or not a string"),
    ("malformed__bad_timestamp", ".timestamp is missing or not a string of epoch seconds"),
])
def test_malformed_payload_names_the_problem_in_one_line(connector: WhatsAppConnector, name: str, reason: str) -> None:
    with pytest.raises(MalformedPayload) as info:
        run_webhook(connector, *signed(name))
    assert reason in str(info.value) and "\n" not in str(info.value)


# -- single messages built in the test: the variants the fixtures do not repeat --------------

def delivery(message: dict | None = None, *, status_item: dict | None = None, contacts: list | None = None) -> bytes:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "4722334455", "phone_number_id": NUMBER_A}}
    if message is not None:
        value |= {"contacts": contacts if contacts is not None else [{"profile": {"name": "Ingrid Hansen"},
                                                                      "wa_id": "4791234567"}],
                  "messages": [{"from": "4791234567", "id": "wamid.X1", "timestamp": "1795508100"} | message]}
    if status_item is not None:
        value["statuses"] = [{"id": OUR1, "timestamp": "1795508100", "recipient_id": "4791234567"} | status_item]
    body = {"object": "whatsapp_business_account",
            "entry": [{"id": "201020304050607", "changes": [{"value": value, "field": "messages"}]}]}
    return json.dumps(body).encode()


def parse_one(connector: WhatsAppConnector, body: bytes) -> NormalizedEvent:
    [event] = run_webhook(connector, body, sign(body))
    return event


@pytest.mark.parametrize(("kind", "expected"), [("video", "video"), ("audio", "audio"), ("image", "image")])
def test_every_media_type_is_an_attachment_fetched_by_id(connector: WhatsAppConnector, kind: str, expected: str) -> None:
    part = {"id": "4490", "mime_type": "audio/ogg; codecs=opus", "sha256": "x=", "voice": True}
    event = parse_one(connector, delivery({"type": kind, kind: part}))
    assert event.attachments == [Attachment(expected, "whatsapp-media:4490", "audio/ogg; codecs=opus", None)]
    assert event.text == ""


def test_a_forwarded_message_has_a_context_without_a_quoted_id(connector: WhatsAppConnector) -> None:
    event = parse_one(connector, delivery({"type": "text", "text": {"body": "fwd"}, "context": {"forwarded": True}}))
    assert event.in_reply_to_external_id is None


def test_an_empty_emoji_is_an_unreact_too(connector: WhatsAppConnector) -> None:
    event = parse_one(connector, delivery({"type": "reaction", "reaction": {"message_id": OUR1, "emoji": ""}}))
    assert event.detail == {"emoji": "", "action": "unreact", "by": "4791234567"}


def test_a_location_without_name_shows_the_coordinates(connector: WhatsAppConnector) -> None:
    event = parse_one(connector, delivery({"type": "location", "location": {"latitude": 63.4305, "longitude": 10.3951}}))
    assert event.text == "📍 (63.4305, 10.3951)"
    assert event.attachments[0].kind == "location" and event.attachments[0].name is None


@pytest.mark.parametrize(("message", "text"), [
    ({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {"response_json": "{}"}}},
     "(unsupported message: interactive nfm_reply)"),
    ({"type": "unsupported", "errors": [{"code": 131060, "title": "This message is currently unavailable."}]},
     "(unsupported message: unknown type)"),
    ({"type": "hologram", "hologram": {}}, "(unsupported message: hologram)"),
])
def test_what_we_cannot_show_is_kept_as_a_visible_message(connector: WhatsAppConnector, message: dict, text: str) -> None:
    event = parse_one(connector, delivery(message))
    assert (event.kind, event.text, event.author) == ("message", text, INGRID)


def test_a_sender_without_a_contacts_entry_has_no_name(connector: WhatsAppConnector) -> None:
    event = parse_one(connector, delivery({"type": "text", "text": {"body": "hei"}}, contacts=[]))
    assert event.author == Author("4791234567")


def test_a_status_for_a_username_customer_names_them_by_user_id(connector: WhatsAppConnector) -> None:
    item = {"status": "read", "recipient_id": None, "recipient_user_id": "NO.1502576394655843"}
    event = parse_one(connector, delivery(status_item=item))
    assert event.thread_external_id == "NO.1502576394655843"


def test_a_failed_status_without_errors_has_an_empty_reason(connector: WhatsAppConnector) -> None:
    """The core then shows its own sentence ("the platform reported a delivery failure")."""
    assert parse_one(connector, delivery(status_item={"status": "failed"})).detail == {"status": "failed", "error": ""}


def test_an_unknown_error_code_is_said_with_its_title(connector: WhatsAppConnector) -> None:
    errors = [{"code": 131053, "title": "Media upload error", "message": "Media upload error"}]
    event = parse_one(connector, delivery(status_item={"status": "failed", "errors": errors}))
    assert event.detail["error"] == "Media upload error (error 131053)"


def test_a_status_we_do_not_track_is_unsupported(connector: WhatsAppConnector) -> None:
    body = delivery(status_item={"status": "played"})  # a voice message was played
    with pytest.raises(UnsupportedEvent, match="status 'played' is not tracked"):
        run_webhook(connector, body, sign(body))


@pytest.mark.parametrize(("message", "reason"), [
    ({"type": "text", "text": {"body": "x"}, "timestamp": 1795508100.5}, "timestamp is missing"),
    ({"type": "text", "text": {"body": "x"}, "timestamp": True}, "timestamp is missing"),
    ({"type": "text", "text": {"body": "x"}, "timestamp": "99999999999999999999"}, "is out of range"),
    ({"type": "text", "text": {"body": 42}}, "body is missing or not a string"),
    ({"type": "text"}, ".text is missing or not an object"),
    ({"type": "image", "image": {"mime_type": "image/png"}}, "id is missing"),
    ({"type": "location", "location": {"latitude": "59.9", "longitude": 10.7}}, "latitude is missing or not a number"),
    ({"type": "reaction", "reaction": {"emoji": "👍"}}, "message_id is missing"),
    ({"type": "text", "text": {"body": "x"}, "from": None}, ".from is missing"),
    ({"type": None, "text": {"body": "x"}}, ".type is missing"),
])
def test_wrong_types_in_a_message_are_malformed(connector: WhatsAppConnector, message: dict, reason: str) -> None:
    body = delivery(message)
    with pytest.raises(MalformedPayload, match=re.escape(reason)):
        run_webhook(connector, body, sign(body))


@pytest.mark.parametrize("body", [
    b'{"object": "whatsapp_business_account", "entry": {}}',
    b'[1, 2]',
    b"\xff\xfe{}",
])
def test_a_broken_envelope_is_malformed(connector: WhatsAppConnector, body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        run_webhook(connector, body, sign(body))


def test_lone_surrogates_become_replacement_characters(connector: WhatsAppConnector) -> None:
    event = parse_one(connector, delivery({"type": "text", "text": {"body": "half \ud83d emoji"}}))
    assert event.text == "half \ufffd emoji"
    json.dumps(event.raw, ensure_ascii=False).encode("utf-8")  # storable


# -- signature and handshake -------------------------------------------------------------

def test_signature_with_another_secret_is_rejected(connector: WhatsAppConnector) -> None:
    body = load_fixture("whatsapp", "message__text")
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body, sign(body, "someone-elses-app"))


@pytest.mark.parametrize("headers", [{}, {"X-Hub-Signature-256": ""}])
def test_missing_signature_is_rejected(connector: WhatsAppConnector, headers: dict) -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        run_webhook(connector, load_fixture("whatsapp", "message__text"), headers)


def test_the_legacy_sha1_header_alone_is_not_enough(connector: WhatsAppConnector) -> None:
    body = load_fixture("whatsapp", "message__text")
    legacy = "sha1=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha1).hexdigest()
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body, {"X-Hub-Signature": legacy})


def test_signature_over_reserialized_json_is_rejected(connector: WhatsAppConnector) -> None:
    """Meta signs the escaped form ("S\\u00e5 h\\u00e4r"): re-dumping the JSON changes the bytes."""
    body = load_fixture("whatsapp", "message__image_caption")
    assert b"S\\u00e5 h\\u00e4r" in body
    reserialized = json.dumps(json.loads(body), ensure_ascii=False).encode()
    assert json.loads(reserialized) == json.loads(body) and reserialized != body
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body, sign(reserialized))


def test_one_changed_byte_is_rejected(connector: WhatsAppConnector) -> None:
    body = load_fixture("whatsapp", "message__text")
    headers = sign(body)
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body.replace(b"48213", b"48214"), headers)


def test_header_name_is_case_insensitive(connector: WhatsAppConnector) -> None:
    body = load_fixture("whatsapp", "status__read")
    connector.verify(webhook_request(body, {k.lower(): v for k, v in sign(body).items()}))


def handshake_query(token: str, mode: str = "subscribe") -> dict[str, str]:
    return {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"}


def test_handshake_echoes_the_challenge_for_the_right_token(connector: WhatsAppConnector) -> None:
    answer = connector.handshake(webhook_request(b"", {}, method="GET", query=handshake_query(VERIFY_TOKEN)))
    assert (answer.status, answer.body, answer.content_type) == (200, "1158201444", "text/plain")


@pytest.mark.parametrize("query", [handshake_query("wrong"), handshake_query(VERIFY_TOKEN, mode="unsubscribe"),
                                   {"hub.mode": "subscribe", "hub.challenge": "1"}])
def test_handshake_with_a_wrong_token_is_refused(connector: WhatsAppConnector, query: dict) -> None:
    answer = connector.handshake(webhook_request(b"", {}, method="GET", query=query))
    assert answer.status == 403 and VERIFY_TOKEN not in answer.body


def test_a_get_without_challenge_or_a_post_is_not_a_handshake(connector: WhatsAppConnector) -> None:
    assert connector.handshake(webhook_request(b"", {}, method="GET")) is None
    assert connector.handshake(webhook_request(b"{}", {}, query=handshake_query(VERIFY_TOKEN))) is None


# -- socialcrm parse-webhook whatsapp ------------------------------------------------------

CLI_SETTINGS = [arg for key, value in SETTINGS.items() for arg in ("--setting", f"{key}={value}")]


def parse_webhook(name: str, capsys, *, secret: str = APP_SECRET) -> tuple[int, str, str]:
    signature = sign(load_fixture("whatsapp", name), secret)["X-Hub-Signature-256"]
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["parse-webhook", "whatsapp", "--body", str(fixture_path("whatsapp", name)),
                              "--header", f"X-Hub-Signature-256: {signature}", *CLI_SETTINGS])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_webhook_prints_the_documented_events(name: str, capsys) -> None:
    code, out, err = parse_webhook(name, capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == [event_to_json(event) for event in EXPECTED[name]]


def test_parse_webhook_bad_signature_exits_2_with_one_line(capsys) -> None:
    code, out, err = parse_webhook("message__text", capsys, secret="not-the-app-secret")
    assert (code, out) == (2, "")
    assert err.startswith("invalid signature: ") and err.count("\n") == 1
    assert APP_SECRET not in err and ACCESS_TOKEN not in err


def test_parse_webhook_malformed_and_unsupported(capsys) -> None:
    code, out, err = parse_webhook("malformed__wrong_object", capsys)
    assert (code, out) == (2, "") and err.startswith("malformed payload: object is 'page'")
    code, out, err = parse_webhook("unknown__field", capsys)
    assert (code, json.loads(out)) == (0, []) and err.startswith("unsupported: ")
