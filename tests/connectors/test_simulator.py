"""The simulator connector through the contract: fixtures in, events out; replies out, errors mapped."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx
import pytest
from harness import check_webhook, load_fixture, run_webhook, sign_simulator, webhook_request
from pydantic import ValidationError

from connectors.simulator import SimulatorConnector
from socialcrm.connector import (
    Attachment,
    Author,
    InvalidSignature,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)

SECRET = "s3cret-webhook"
ACCOUNT = "brand-42"

INGRID = Author("u1", "Ingrid Hansen", "ingridh", followers=312)
SVEN = Author("u7", "Sven Nilsson", "svenne", followers=48)
JAMES = Author("u9", "James Walker", "jwalker", followers=250000)
ASTRID = Author("u3", "Astrid Ødegård", "astrido", followers=None)
BRAND = Author(ACCOUNT, "Brand", "brand", followers=12000, is_self=True)
EVIL = "<script>alert(1)</script> <img src=x onerror=alert(1)>"


def jun10(hour: int, minute: int, second: int, ms: int = 0) -> datetime:
    """Written out by hand, so the expected times do not reuse the code's arithmetic."""
    return datetime(2024, 6, 10, hour, minute, second, ms * 1000, tzinfo=UTC)


def ev(kind: str, public: bool, external_id: str, thread: str, author: Author, created_at: datetime,
       text: str = "", **fields: object) -> NormalizedEvent:
    return NormalizedEvent(kind=kind, public=public, external_id=external_id, thread_external_id=thread,
                           author=author, created_at=created_at, text=text, account_id=ACCOUNT, **fields)


EXPECTED: dict[str, list[NormalizedEvent]] = {
    "post__text": [ev("mention", True, "p100", "p100", INGRID, jun10(6, 13, 20, 123),
                      "Hei @brand! Når kommer bestillingen min? Ordrenummer 48213.")],
    "post__emoji": [ev("mention", True, "p101", "p101", ASTRID, jun10(6, 13, 21, 999),
                       "Elsker den nye kolleksjonen 😍🔥 👩‍👩‍👧 🇳🇴",
                       attachments=[Attachment("image", "https://sim.example/media/p101.jpg", "image/jpeg", "outfit.jpg")])],
    "comment__top_level": [ev("comment", True, "c200", "bp1", SVEN, jun10(6, 14, 20),
                              "Samma problem här, ingen leverans än.", in_reply_to_external_id="bp1")],
    "comment__reply": [ev("comment", True, "c201", "p100", JAMES, jun10(6, 15, 20, 456),
                          "Same here. Three weeks and counting.", in_reply_to_external_id="c200")],
    "dm__text": [ev("message", False, "m300", "u7", SVEN, jun10(6, 16, 20, 7),
                    "Hej! Min beställning har inte kommit fram än, vad händer?")],
    "dm__attachments": [ev("message", False, "m301", "u7", SVEN, jun10(6, 16, 21), attachments=[
        Attachment("image", "https://sim.example/media/m301-1.png", "image/png", None),
        Attachment("file", "https://sim.example/media/kvitto.pdf", "application/pdf", "kvitto.pdf")])],
    "echo__public": [ev("echo", True, "e400", "p100", BRAND, jun10(6, 17, 20),
                        "Sorry about that, James! We have sent you a DM.", in_reply_to_external_id="c201")],
    "echo__private": [ev("echo", False, "e401", "u7", BRAND, jun10(6, 17, 21),
                         "Hej Sven, paketet är på väg och kommer i morgon.")],
    "edit__text": [ev("edit", True, "c200:edit:1718000300500", "bp1", SVEN, jun10(6, 18, 20, 500),
                      "Samma problem här, ingen leverans än. (redigerat)", target_external_id="c200")],
    # An edit may arrive before the item it changes: parsing does not care, ingest keeps it.
    "edit__before_create": [ev("edit", True, "c999:edit:1718000301000", "c999", INGRID, jun10(6, 18, 21),
                               "Rettet skrivefeil", target_external_id="c999")],
    "delete__dm": [ev("delete", False, "m300:delete", "u7", SVEN, jun10(6, 18, 22), target_external_id="m300")],
    "reaction__like": [ev("reaction", True, "c200:reaction:u9:1718000303000", "bp1", JAMES, jun10(6, 18, 23),
                          target_external_id="c200", detail={"emoji": "👍", "action": "react"})],
    # The story_view in the middle is an unknown type: skipped, the rest still arrive.
    "batch__mixed": [
        ev("mention", True, "p102", "p102", JAMES, jun10(6, 20, 0), "Is there a student discount?"),
        ev("comment", True, "c202", "p102", INGRID, jun10(6, 20, 1), "Lurer på det samme!", in_reply_to_external_id="p102"),
        ev("message", False, "m302", "u9", JAMES, jun10(6, 20, 2), "Asking here too."),
        ev("reaction", True, "p102:reaction:u7:1718000403000", "p102", SVEN, jun10(6, 20, 3),
           target_external_id="p102", detail={"emoji": "❤️", "action": "react"}),
    ],
    # Text is kept exactly as written: escaping is the templates' job, never the connector's.
    "text__script_injection": [ev("comment", True, "c666", "bp2", Author("u66", f"Mallory {EVIL}", "mallory", followers=3),
                                  jun10(6, 25, 0), f"Nice shop {EVIL} & \"quotes\" 'too'", in_reply_to_external_id="bp2")],
    # A lone surrogate cannot be stored as UTF-8 and NUL breaks PostgreSQL: both become U+FFFD.
    "text__lone_surrogate": [ev("message", False, "m777", "u77", Author("u77", "Broken \ufffd Name", "broken", followers=1),
                                jun10(6, 26, 40), "half an emoji \ufffd and a nul \ufffd here")],
}


@pytest.fixture(scope="module")
def connector() -> SimulatorConnector:
    """Webhook handling is pure, so one instance serves the whole module."""
    settings = {"account_id": ACCOUNT, "webhook_secret": SECRET, "api_token": "tok", "api_base_url": "http://sim.test"}
    return SimulatorConnector.from_settings(settings, httpx.AsyncClient())


def signed(name: str) -> tuple[bytes, dict[str, str]]:
    body = load_fixture("simulator", name)
    return body, sign_simulator(SECRET, body)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_events(connector: SimulatorConnector, name: str) -> None:
    check_webhook(connector, *signed(name), EXPECTED[name])


def test_raw_is_the_item_each_event_came_from(connector: SimulatorConnector) -> None:
    events = run_webhook(connector, *signed("batch__mixed"))
    assert [e.raw["id"] for e in events] == ["p102", "c202", "m302", "rx2"]


def test_cleaned_text_and_raw_are_storable_as_utf8(connector: SimulatorConnector) -> None:
    [event] = run_webhook(connector, *signed("text__lone_surrogate"))
    json.dumps(event.raw, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    assert "\x00" not in json.dumps(event.raw, ensure_ascii=False)


@pytest.mark.parametrize("name", ["unknown__type", "empty__events"])
def test_nothing_to_handle_is_unsupported(connector: SimulatorConnector, name: str) -> None:
    with pytest.raises(UnsupportedEvent):
        run_webhook(connector, *signed(name))


@pytest.mark.parametrize(("name", "reason"), [
    ("malformed__missing_id", "events[0].id is missing"),
    ("malformed__bad_timestamp", "events[0].timestamp is missing or not integer milliseconds"),
    ("malformed__missing_author", "item c203: author is missing"),
    ("malformed__echo_without_visibility", "item e402: visibility must be"),
    ("malformed__events_not_list", "events is missing or not a list"),
    ("malformed__not_object", "body is a JSON list, not an object"),
    ("malformed__not_json", "body is not JSON"),
])
def test_malformed_payload_names_the_problem_in_one_line(connector: SimulatorConnector, name: str, reason: str) -> None:
    with pytest.raises(MalformedPayload) as info:
        run_webhook(connector, *signed(name))
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def body_with(**changes: object) -> bytes:
    item = {"type": "dm", "id": "m1", "timestamp": 1718000000000, "thread_id": "u1",
            "author": {"id": "u1", "name": "Kari", "handle": "kari", "followers": 3}, "text": "hei"}
    item.update(changes)
    return json.dumps({"account_id": ACCOUNT, "events": [item]}).encode()


@pytest.mark.parametrize(("body", "reason"), [
    (body_with(timestamp=True), "timestamp"),
    (body_with(timestamp=1.5), "timestamp"),
    (body_with(timestamp=10**20), "out of range"),
    (body_with(text=42), "item m1.text is not a string"),
    (body_with(author={"id": "u1", "followers": "many"}), "author.followers"),
    (body_with(author={"name": "no id"}), "item m1: author.id is missing"),
    (body_with(attachments={"kind": "image"}), "attachments is not a list"),
    (body_with(attachments=[{"url": "https://x"}]), "attachment.kind is missing"),
    (body_with(thread_id=None), "item m1.thread_id is missing"),
    (body_with(type="reaction", target_id="m0"), "item m1.emoji is missing"),
    (body_with(type="edit"), "item m1.target_id is missing"),
    (json.dumps({"events": []}).encode(), "account_id is missing"),
    (b"\xff\xfe{}", "body is not JSON"),
])
def test_wrong_types_are_malformed(connector: SimulatorConnector, body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=re.escape(reason)):
        run_webhook(connector, body, sign_simulator(SECRET, body))


# -- signatures and handshake -------------------------------------------------------------

def test_signature_with_another_secret_is_rejected(connector: SimulatorConnector) -> None:
    body = load_fixture("simulator", "dm__text")
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body, sign_simulator("not-the-secret", body))


def test_missing_signature_is_rejected(connector: SimulatorConnector) -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        run_webhook(connector, load_fixture("simulator", "dm__text"), {"Content-Type": "application/json"})


def test_signature_over_reserialized_json_is_rejected(connector: SimulatorConnector) -> None:
    """Same JSON, different bytes: the HMAC must be over the raw body, not a re-dump of it."""
    body = load_fixture("simulator", "dm__text")
    reserialized = json.dumps(json.loads(body)).encode()
    assert json.loads(reserialized) == json.loads(body) and reserialized != body
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body, sign_simulator(SECRET, reserialized))


@pytest.mark.parametrize("mangle", [
    str.upper,                                              # the documented format is lowercase hex
    lambda s: s.removeprefix("sha256="),                    # the algorithm prefix is part of it
    lambda s: s[:-1] + ("1" if s[-1] == "0" else "0"),      # one digit off
    lambda s: s + "00",                                     # a longer value
])
def test_signature_must_be_exactly_sha256_lowercase_hex(connector: SimulatorConnector, mangle) -> None:
    body = load_fixture("simulator", "post__text")
    headers = sign_simulator(SECRET, body)
    headers["X-Simulator-Signature"] = mangle(headers["X-Simulator-Signature"])
    with pytest.raises(InvalidSignature):
        connector.verify(webhook_request(body, headers))


def test_header_name_is_case_insensitive(connector: SimulatorConnector) -> None:
    body = load_fixture("simulator", "post__text")
    headers = {k.lower(): v for k, v in sign_simulator(SECRET, body).items()}
    connector.verify(webhook_request(body, headers))


def test_handshake_echoes_the_challenge_for_the_right_token(connector: SimulatorConnector) -> None:
    req = webhook_request(b"", {"X-Simulator-Token": SECRET}, method="GET", query={"challenge": "abc123"})
    answer = connector.handshake(req)
    assert (answer.status, answer.body) == (200, "abc123")


@pytest.mark.parametrize("headers", [{"X-Simulator-Token": "wrong"}, {}])
def test_handshake_with_a_wrong_or_missing_token_is_refused(connector: SimulatorConnector, headers) -> None:
    answer = connector.handshake(webhook_request(b"", headers, method="GET", query={"challenge": "abc"}))
    assert (answer.status, answer.body) == (403, "verify token mismatch")


def test_get_without_challenge_is_not_a_handshake(connector: SimulatorConnector) -> None:
    assert connector.handshake(webhook_request(b"", {"X-Simulator-Token": SECRET}, method="GET")) is None


# -- settings -----------------------------------------------------------------------------

def test_settings_hide_secrets_and_require_them() -> None:
    settings = SimulatorConnector.Settings.model_validate(
        {"account_id": "b", "webhook_secret": "hush-1", "api_token": "hush-2"})
    assert "hush" not in repr(settings) and settings.api_base_url == "http://127.0.0.1:8090"
    with pytest.raises(ValidationError) as info:
        SimulatorConnector.Settings.model_validate({"account_id": "b", "webhook_secret": ""})
    assert {e["loc"][0] for e in info.value.errors()} == {"webhook_secret", "api_token"}


def test_account_id_and_capabilities(connector: SimulatorConnector) -> None:
    caps = connector.capabilities
    assert connector.account_id() == ACCOUNT and connector.key == "simulator"
    assert (caps.max_length(True), caps.max_length(False), caps.reply_window.total_seconds()) == (500, 2000, 86400)
    assert caps.webhook and caps.poll and not caps.private_reply_to_public
    assert caps.moderation == {"hide", "delete"}
