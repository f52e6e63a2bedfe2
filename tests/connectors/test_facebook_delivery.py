"""What the Facebook webhook endpoint checks before parsing: handshake and signature; and the CLI."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json

import httpx
import pytest
from harness import fixture_path, load_fixture, webhook_request
from test_facebook_webhooks import EXPECTED

from connectors.facebook import FacebookConnector
from socialcrm.cli_tools import add_commands, event_to_json
from socialcrm.connector import HandshakeResponse, InvalidSignature

SECRET = "fb-app-secret-5d1e"
VERIFY = "nordlys-verify-7"
PAGE = "104650212345678"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def connector() -> FacebookConnector:
    settings = {"page_id": PAGE, "app_secret": SECRET, "verify_token": VERIFY, "access_token": "EAAtoken"}
    return FacebookConnector.from_settings(settings, httpx.AsyncClient())


# -- handshake ------------------------------------------------------------------------------

def handshake_query(token: str, mode: str = "subscribe") -> dict[str, str]:
    return {"hub.mode": mode, "hub.challenge": "1158201444", "hub.verify_token": token}


def test_handshake_answers_the_challenge_as_text(connector: FacebookConnector) -> None:
    answer = connector.handshake(webhook_request(b"", {}, method="GET", query=handshake_query(VERIFY)))
    assert answer == HandshakeResponse(200, "1158201444", "text/plain")


@pytest.mark.parametrize("query", [handshake_query("wrong"), handshake_query(""), handshake_query(VERIFY, "unsubscribe"),
                                   {"hub.mode": "subscribe", "hub.challenge": "1"}])
def test_handshake_with_a_wrong_token_is_403(connector: FacebookConnector, query: dict[str, str]) -> None:
    answer = connector.handshake(webhook_request(b"", {}, method="GET", query=query))
    assert answer is not None and answer.status == 403 and VERIFY not in answer.body


def test_without_a_verify_token_setting_every_handshake_is_refused() -> None:
    """An unset token must not match an empty hub.verify_token."""
    bare = FacebookConnector.from_settings({"page_id": PAGE, "app_secret": SECRET}, httpx.AsyncClient())
    answer = bare.handshake(webhook_request(b"", {}, method="GET", query=handshake_query("")))
    assert answer is not None and answer.status == 403


def test_a_post_or_a_get_without_challenge_is_not_a_handshake(connector: FacebookConnector) -> None:
    assert connector.handshake(webhook_request(b"{}", {}, query=handshake_query(VERIFY))) is None
    assert connector.handshake(webhook_request(b"", {}, method="GET", query={"hub.mode": "subscribe"})) is None


# -- signature ------------------------------------------------------------------------------

def test_signature_over_the_raw_bytes_is_accepted(connector: FacebookConnector) -> None:
    body = load_fixture("facebook", "message__text")
    connector.verify(webhook_request(body, {"X-Hub-Signature-256": sign(body)}))
    connector.verify(webhook_request(body, {"x-hub-signature-256": sign(body).upper().replace("SHA256=", "sha256=")}))


@pytest.mark.parametrize("headers", [
    {},                                                                  # missing
    {"X-Hub-Signature-256": ""},                                         # empty
    {"X-Hub-Signature-256": "sha256=" + "0" * 64},                       # wrong
    {"X-Hub-Signature": "sha1=0123456789abcdef0123456789abcdef01234567"},  # only the legacy SHA-1 header
])
def test_missing_or_wrong_signature_is_rejected(connector: FacebookConnector, headers: dict[str, str]) -> None:
    body = load_fixture("facebook", "message__text")
    with pytest.raises(InvalidSignature):
        connector.verify(webhook_request(body, headers))


def test_another_apps_secret_is_rejected(connector: FacebookConnector) -> None:
    body = load_fixture("facebook", "message__text")
    with pytest.raises(InvalidSignature, match="does not match"):
        connector.verify(webhook_request(body, {"X-Hub-Signature-256": sign(body, "someone-else")}))


def test_re_serialised_json_does_not_match_what_meta_signed(connector: FacebookConnector) -> None:
    """Meta signs `\\u00e4`; a framework that decodes and re-encodes the body sends `ä` instead."""
    body = load_fixture("facebook", "message__text")
    assert b"\\u00e4" in body
    signature = sign(body)
    for reencoded in (json.dumps(json.loads(body), ensure_ascii=False).encode(), json.dumps(json.loads(body)).encode()):
        assert reencoded != body
        with pytest.raises(InvalidSignature):
            connector.verify(webhook_request(reencoded, {"X-Hub-Signature-256": signature}))


def test_a_changed_byte_breaks_the_signature(connector: FacebookConnector) -> None:
    body = load_fixture("facebook", "feed_comment__top_level")
    tampered = body.replace(b"5523456789012345", b"5523456789012346", 1)
    with pytest.raises(InvalidSignature):
        connector.verify(webhook_request(tampered, {"X-Hub-Signature-256": sign(body)}))


def test_secrets_are_not_in_reprs_or_errors(connector: FacebookConnector) -> None:
    assert SECRET not in repr(connector.settings) and "EAAtoken" not in repr(connector.settings)
    with pytest.raises(InvalidSignature) as info:
        connector.verify(webhook_request(b"{}", {"X-Hub-Signature-256": "sha256=00"}))
    assert SECRET not in str(info.value)


# -- socialcrm parse-webhook facebook ----------------------------------------------------------

def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def parse_webhook(name: str, capsys: pytest.CaptureFixture[str], secret: str = SECRET) -> tuple[int, str, str]:
    signature = sign(load_fixture("facebook", name), secret)
    return cli(["parse-webhook", "facebook", "--body", str(fixture_path("facebook", name)),
                "--header", f"X-Hub-Signature-256: {signature}",
                "--setting", f"app_secret={SECRET}", "--setting", f"page_id={PAGE}"], capsys)


def test_parse_webhook_prints_the_documented_events(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = parse_webhook("feed_comment__reply", capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == [{
        "kind": "comment", "public": True, "external_id": "1234567890123456_987654321098766",
        "thread_external_id": f"{PAGE}_1234567890123456",
        "in_reply_to_external_id": "1234567890123456_987654321098765",
        "author": {"external_id": "5634567890123456", "name": "Ola Hansen", "handle": None, "avatar_url": None,
                   "followers": None, "is_self": False},
        "text": "Lurer på det samme!", "created_at": "2026-11-24T09:15:00.000Z", "attachments": [],
        "target_external_id": None, "detail": {}, "account_id": PAGE,
    }]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_webhook_prints_every_fixtures_events(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = parse_webhook(name, capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == [event_to_json(event) for event in EXPECTED[name]]


def test_parse_webhook_keeps_messenger_milliseconds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = parse_webhook("message__text", capsys)
    [event] = json.loads(out)
    assert code == 0 and event["created_at"] == "2026-11-24T09:00:00.456Z"
    assert event["text"] == "Hej! Var är min beställning? Ordernummer 48213."


def test_parse_webhook_bad_signature_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = parse_webhook("message__text", capsys, secret="not-the-app-secret")
    assert (code, out) == (2, "")
    assert err.startswith("invalid signature: ") and err.count("\n") == 1 and SECRET not in err


def test_parse_webhook_unsupported_prints_nothing_and_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = parse_webhook("unknown__messaging_optin", capsys)
    assert (code, json.loads(out)) == (0, [])
    assert err.startswith("unsupported: ")
