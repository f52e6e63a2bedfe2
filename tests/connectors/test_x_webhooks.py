"""The X connector's Account Activity webhooks: CRC, signatures, every fixture to exact events."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
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

from connectors.x import XConnector
from connectors.x.normalize import dm_thread
from socialcrm.cli_tools import add_commands, event_to_json
from socialcrm.connector import (
    Attachment,
    Author,
    InvalidSignature,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)

SECRET = "x-consumer-secret-4f9a"
BRAND_ID = "1402378515127390211"
HEADER = "x-twitter-webhooks-signature"

BRAND = Author(BRAND_ID, "Fjordkaffe", "fjordkaffe", "https://pbs.twimg.com/profile_images/1402378699/fjordkaffe_normal.jpg",
               12840, is_self=True)
INGRID = Author("1283749102938475521", "Ingrid Hansen", "ingridh",
                "https://pbs.twimg.com/profile_images/1283750011/ingrid_normal.jpg", 312)
SVEN = Author("987654321", "Sven Nilsson", "svenne", "https://pbs.twimg.com/profile_images/98765/sven_normal.png", 48)
JAMES = Author("1466102231001018370", "James Walker", "jwalker",
               "https://pbs.twimg.com/profile_images/1466102300/james_normal.jpg", 250000)

POST = "2125122241950650369"        # the brand's post "Polarnatt er tilbake"
MENTION = "2125140696889480839"     # Ingrid's mention (tweet_create__mention)
SVEN_DM_THREAD = "987654321-1402378515127390211"    # numerically lower id first
INGRID_DM_THREAD = "1283749102938475521-1402378515127390211"


def nov24(hour: int, minute: int, second: int, ms: int = 0) -> datetime:
    """Written out by hand, so expected times do not reuse the code's parsing."""
    return datetime(2026, 11, 24, hour, minute, second, ms * 1000, tzinfo=UTC)


def ev(kind: str, public: bool, external_id: str, thread: str, author: Author, created_at: datetime,
       text: str = "", **fields: object) -> NormalizedEvent:
    return NormalizedEvent(kind=kind, public=public, external_id=external_id, thread_external_id=thread,
                           author=author, created_at=created_at, text=text, account_id=BRAND_ID, **fields)


#: X's detected `lang` of a post ("no": X does not tell Bokmål from Nynorsk); DMs have none.
NO, EN = {"language": "no"}, {"language": "en"}

EXPECTED: dict[str, list[NormalizedEvent]] = {
    "tweet_create__mention": [ev(
        "mention", True, MENTION, MENTION, INGRID, nov24(8, 13, 20),
        "@fjordkaffe Hei! Når kommer bestillingen min? Ordre 48213 har stått på «under behandling» i ei uke 😕",
        detail=NO)],
    # A reply to one of the brand's own posts is a comment under it; thread = the post replied to.
    "tweet_create__reply_to_brand": [ev(
        "comment", True, "2125140873051247717", POST, SVEN, nov24(8, 14, 2),
        "@fjordkaffe Samma problem här, ingen leverans än. Finns den i Sverige?", in_reply_to_external_id=POST,
        detail={"language": "sv"})],
    "tweet_create__echo": [ev(
        "echo", True, "2125142563356870828", MENTION, BRAND, nov24(8, 20, 45),
        "@ingridh Beklager ventetiden, Ingrid! Vi har sendt deg en DM med sporingsnummeret.",
        in_reply_to_external_id=MENTION, detail=NO)],
    # truncated=true: the full text comes from extended_tweet, &amp; &lt; &gt; become plain text,
    # and the t.co link standing for the photo gives way to the attachment.
    "tweet_create__extended": [ev(
        "mention", True, "2125145172210875635", MENTION, JAMES, nov24(8, 31, 7),
        "@ingridh @fjordkaffe Same here & it's been 9 days. The tracking page says <no data> and support "
        "hasn't answered my email either. Ordered 2 bags of Polarnatt on the 14th. Photo of the \"delivered\" "
        "notice I got, with no parcel anywhere:",
        in_reply_to_external_id=MENTION,
        attachments=[Attachment("image", "https://pbs.twimg.com/media/GdQx1aBXkAEz9pL.jpg")], detail=EN)],
    # The middle item has no id_str: it is skipped (logged), the other two arrive.
    "tweet_create__batch": [
        ev("mention", True, "2125154957524329857", "2125154957524329857", INGRID, nov24(9, 10, 0),
           "@fjordkaffe Takk, fikk DM-en! 🙏", detail=NO),
        ev("mention", True, "2125155586668568606", "2125155586668568606", JAMES, nov24(9, 12, 30),
           "@fjordkaffe Any update on my order? #polarnatt", detail=EN),
    ],
    "direct_message__text": [ev(
        "message", False, "2125162507269145273", SVEN_DM_THREAD, SVEN, nov24(9, 40, 0, 123),
        "Hej! Ordernummer 51877, paketet har inte kommit. Kan ni kolla?")],
    "direct_message__echo": [ev(
        "echo", False, "2125168819696665274", SVEN_DM_THREAD, BRAND, nov24(10, 5, 5, 7),
        "Hei Sven! Pakken ble sendt i dag, sporingsnummer 70712345678. Beklager forsinkelsen!")],
    "direct_message__media": [ev(
        "message", False, "2125163892438041275", INGRID_DM_THREAD, INGRID, nov24(9, 45, 30, 250),
        "Her er kvitteringen, ordre 48213.", attachments=[Attachment(
            "image", "https://ton.twitter.com/1.1/ton/data/dm/2125163892438041275/2125160000000000007/kvittering.jpg")])],
    "favorite__like": [ev(
        "reaction", True, f"{POST}:reaction:1466102231001018370:1795509600321", POST, JAMES, nov24(8, 40, 0, 321),
        target_external_id=POST, detail={"emoji": "❤️", "action": "react", "by": "1466102231001018370"})],
    "tweet_delete__status": [ev(
        "delete", True, f"{MENTION}:delete", MENTION, Author("1283749102938475521"), nov24(11, 0, 0, 42),
        target_external_id=MENTION)],
}


@pytest.fixture(scope="module")
def connector() -> XConnector:
    """Webhook handling is pure, so one instance serves the whole module."""
    return XConnector.from_settings({"user_id": BRAND_ID, "consumer_secret": SECRET}, httpx.AsyncClient())


def sign(secret: str, body: bytes) -> dict[str, str]:
    """The header X sends, computed here independently of the connector."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"Content-Type": "application/json", HEADER: "sha256=" + base64.b64encode(mac).decode()}


def signed(name: str) -> tuple[bytes, dict[str, str]]:
    body = load_fixture("x", name)
    return body, sign(SECRET, body)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_events(connector: XConnector, name: str) -> None:
    check_webhook(connector, *signed(name), EXPECTED[name])


def test_a_skipped_item_is_logged_with_its_place_and_reason(connector: XConnector, caplog) -> None:
    run_webhook(connector, *signed("tweet_create__batch"))
    assert [r.getMessage() for r in caplog.records] == [
        f"x: skipped tweet_create_events[1] for {BRAND_ID}: id_str is missing or not a numeric string"]


def test_raw_is_the_object_each_event_came_from(connector: XConnector) -> None:
    [tweet] = run_webhook(connector, *signed("tweet_create__mention"))
    assert tweet.raw["id_str"] == MENTION and tweet.raw["user"]["screen_name"] == "ingridh"
    [dm] = run_webhook(connector, *signed("direct_message__text"))
    assert dm.raw["type"] == "message_create" and dm.raw["message_create"]["sender_id"] == "987654321"


def test_ids_stay_exact_strings_although_the_json_numbers_exceed_2_53(connector: XConnector) -> None:
    body = load_fixture("x", "tweet_create__mention")
    assert json.loads(body)["tweet_create_events"][0]["id"] == int(MENTION) > 2**53
    [event] = run_webhook(connector, body, sign(SECRET, body))
    assert event.external_id == MENTION and isinstance(event.external_id, str)


@pytest.mark.parametrize(("name", "reason"), [
    ("follow__user", "no supported events (got: follow)"),
    ("typing__indicator", "no supported events (got: direct_message_indicate_typing)"),
    ("tweet_create__retweet", "retweets"),
])
def test_unhandled_events_are_unsupported(connector: XConnector, name: str, reason: str) -> None:
    with pytest.raises(UnsupportedEvent, match=re.escape(reason)):
        run_webhook(connector, *signed(name))


@pytest.mark.parametrize(("name", "reason"), [
    ("malformed__not_json", "body is not JSON"),
    ("malformed__no_for_user_id", "for_user_id is missing"),
    ("malformed__events_not_list", "direct_message_events is not a list"),
    ("malformed__bad_created_at", "tweet_create_events[0]: created_at '2026-11-24T09:20:00.000Z' is not like"),
])
def test_malformed_payload_names_the_problem_in_one_line(connector: XConnector, name: str, reason: str) -> None:
    with pytest.raises(MalformedPayload) as info:
        run_webhook(connector, *signed(name))
    assert reason in str(info.value) and "\n" not in str(info.value)


def dm_body(**create: object) -> bytes:
    message = {"sender_id": "987654321", "target": {"recipient_id": BRAND_ID}, "message_data": {"text": "hei"}}
    message.update(create)
    event = {"type": "message_create", "id": "2125162507269145999", "created_timestamp": "1795513200000",
             "message_create": message}
    return json.dumps({"for_user_id": BRAND_ID, "direct_message_events": [event]}).encode()


@pytest.mark.parametrize(("body", "reason"), [
    (dm_body(sender_id=987654321), "sender_id is missing or not a numeric string"),
    (dm_body(target={}), "recipient_id is missing"),
    (dm_body(message_data="hei"), "message_data is not an object"),
    (json.dumps({"for_user_id": 1402378515127390211, "favorite_events": []}).encode(), "for_user_id is missing"),
    (json.dumps(["for_user_id"]).encode(), "body is a JSON list, not an object"),
    (json.dumps({"for_user_id": BRAND_ID + "\n", "favorite_events": []}).encode(), "for_user_id is missing"),
    (json.dumps({"for_user_id": BRAND_ID, "tweet_delete_events": [{"status": {"id": "1", "user_id": "2"},
                                                                   "timestamp_ms": "soon"}]}).encode(),
     "timestamp_ms is missing or not epoch milliseconds"),
    (b"\xff\xfe{}", "body is not JSON"),
])
def test_wrong_types_are_malformed(connector: XConnector, body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=re.escape(reason)):
        run_webhook(connector, body, sign(SECRET, body))


def test_a_dm_from_someone_missing_in_the_users_map_still_arrives(connector: XConnector) -> None:
    [event] = run_webhook(connector, dm_body(), sign(SECRET, dm_body()))
    assert event.author == Author("987654321") and event.thread_external_id == SVEN_DM_THREAD


def test_other_dm_event_types_are_skipped(connector: XConnector) -> None:
    body = json.dumps({"for_user_id": BRAND_ID, "direct_message_events": [{"type": "welcome_message", "id": "1"}]}).encode()
    with pytest.raises(UnsupportedEvent):
        run_webhook(connector, body, sign(SECRET, body))


# -- redelivery, ordering, routing -----------------------------------------------------------

@pytest.mark.parametrize("name", ["tweet_create__batch", "favorite__like", "tweet_delete__status", "direct_message__text"])
def test_duplicate_delivery_maps_to_the_same_ids(connector: XConnector, name: str) -> None:
    first = [e.external_id for e in run_webhook(connector, *signed(name))]
    assert first == [e.external_id for e in run_webhook(connector, *signed(name))]


def test_a_delete_before_its_post_names_the_right_target(connector: XConnector) -> None:
    """Out of order: the delete is parsed first; its target is the post that arrives after it."""
    [delete] = run_webhook(connector, *signed("tweet_delete__status"))
    [post] = run_webhook(connector, *signed("tweet_create__mention"))
    assert delete.target_external_id == post.external_id == MENTION
    assert delete.external_id != post.external_id


def test_account_id_is_for_user_id_so_one_url_serves_several_accounts() -> None:
    other = XConnector.from_settings({"user_id": "42", "consumer_secret": SECRET}, httpx.AsyncClient())
    [event] = run_webhook(other, *signed("direct_message__echo"))
    assert event.account_id == BRAND_ID and event.kind == "echo" and event.author.is_self
    assert other.account_id() == "42"


def test_dm_thread_compares_ids_as_integers_of_any_size() -> None:
    assert dm_thread("1402378515127390211", "987654321") == "987654321-1402378515127390211"
    big = 2**63 - 1
    assert float(big) == float(big - 1)
    assert dm_thread(str(big), str(big - 1)) == f"{big - 1}-{big}"


# -- CRC and signatures -------------------------------------------------------------------------

def test_crc_answers_with_the_hmac_of_the_token(connector: XConnector) -> None:
    token = "a1b2c3d4e5f6-crc"
    expected = "sha256=" + base64.b64encode(hmac.new(SECRET.encode(), token.encode(), hashlib.sha256).digest()).decode()
    answer = connector.handshake(webhook_request(b"", {}, method="GET", query={"crc_token": token}))
    assert answer is not None and (answer.status, answer.content_type) == (200, "application/json")
    assert json.loads(answer.body) == {"response_token": expected}


@pytest.mark.parametrize(("method", "query"), [("GET", {}), ("POST", {"crc_token": "t"}), ("GET", {"other": "1"})])
def test_other_requests_are_not_a_crc(connector: XConnector, method: str, query: dict[str, str]) -> None:
    assert connector.handshake(webhook_request(b"", {}, method=method, query=query)) is None


def test_without_a_consumer_secret_crc_and_signatures_are_refused() -> None:
    poll_only = XConnector.from_settings({"user_id": BRAND_ID, "bearer_token": "b"}, httpx.AsyncClient())
    answer = poll_only.handshake(webhook_request(b"", {}, method="GET", query={"crc_token": "t"}))
    assert answer is not None and answer.status == 403
    body, headers = signed("tweet_create__mention")
    with pytest.raises(InvalidSignature, match="no consumer_secret"):
        poll_only.verify(webhook_request(body, headers))


def test_signature_with_another_secret_is_rejected(connector: XConnector) -> None:
    body = load_fixture("x", "direct_message__text")
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body, sign("not-the-secret", body))


def test_missing_signature_is_rejected(connector: XConnector) -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        run_webhook(connector, load_fixture("x", "direct_message__text"), {"Content-Type": "application/json"})


def test_signature_over_reserialized_json_is_rejected(connector: XConnector) -> None:
    """Same JSON, different bytes: the HMAC must be over the raw body, not a re-dump of it."""
    body = load_fixture("x", "tweet_create__mention")
    reserialized = json.dumps(json.loads(body), ensure_ascii=False).encode()
    assert json.loads(reserialized) == json.loads(body) and reserialized != body
    with pytest.raises(InvalidSignature):
        run_webhook(connector, body, sign(SECRET, reserialized))


def test_header_name_is_case_insensitive(connector: XConnector) -> None:
    body = load_fixture("x", "favorite__like")
    headers = {"X-Twitter-Webhooks-Signature": sign(SECRET, body)[HEADER]}
    connector.verify(webhook_request(body, headers))


@pytest.mark.parametrize("mangle", [
    lambda s: s.removeprefix("sha256="),                                      # the prefix is part of it
    lambda s: "sha256=" + base64.b64decode(s[7:]).hex(),                      # hex is not X's format
    str.swapcase,                                                             # base64 is case-sensitive
    lambda s: s[:-2] + ("A=" if s[-2] != "A" else "B="),                      # one character off
    lambda s: s + "AA",                                                       # a longer value
])
def test_signature_must_be_exactly_sha256_base64(connector: XConnector, mangle) -> None:
    body = load_fixture("x", "tweet_create__echo")
    headers = sign(SECRET, body)
    headers[HEADER] = mangle(headers[HEADER])
    with pytest.raises(InvalidSignature):
        connector.verify(webhook_request(body, headers))


def test_settings_need_a_numeric_user_id_and_some_credential() -> None:
    with pytest.raises(ValidationError, match="user_id"):
        XConnector.from_settings({"user_id": "@fjordkaffe", "consumer_secret": SECRET}, httpx.AsyncClient())
    with pytest.raises(ValidationError, match="consumer_secret"):
        XConnector.from_settings({"user_id": BRAND_ID}, httpx.AsyncClient())


def test_secrets_never_show_in_reprs(connector: XConnector) -> None:
    assert SECRET not in repr(connector.settings) and SECRET not in str(connector.settings.model_dump())


# -- socialcrm parse-webhook ----------------------------------------------------------------------

def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def parse_webhook(name: str, capsys, *, secret: str = SECRET) -> tuple[int, str, str]:
    signature = sign(secret, load_fixture("x", name))[HEADER]
    return cli(["parse-webhook", "x", "--body", str(fixture_path("x", name)), "--header", f"{HEADER}: {signature}",
                "--setting", f"consumer_secret={SECRET}", "--setting", f"user_id={BRAND_ID}"], capsys)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_webhook_prints_the_documented_events(capsys, name: str) -> None:
    code, out, err = parse_webhook(name, capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == [event_to_json(event) for event in EXPECTED[name]]


def test_parse_webhook_exits_2_on_a_bad_signature(capsys) -> None:
    code, out, err = parse_webhook("tweet_create__mention", capsys, secret="someone-else")
    assert (code, out) == (2, "")
    assert err.startswith("invalid signature: ") and err.count("\n") == 1 and SECRET not in err
