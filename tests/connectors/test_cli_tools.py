"""`parse-webhook` and `poll-once`, run in-process through argparse as the main CLI registers them."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import respx
from harness import fixture_path, load_fixture, sign_simulator

from socialcrm.cli_tools import add_commands, event_to_json, iso_utc
from socialcrm.connector import Author, NormalizedEvent

SECRET = "cli-webhook-secret-9f2"
TOKEN = "cli-api-token-77a"
BASE = "http://sim.test"
SETTINGS = ["--setting", "account_id=brand-42", "--setting", f"webhook_secret={SECRET}",
            "--setting", f"api_token={TOKEN}", "--setting", f"api_base_url={BASE}"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def parse_webhook(name: str, capsys, *, secret: str = SECRET, extra: list[str] = ()) -> tuple[int, str, str]:
    body = load_fixture("simulator", name)
    signature = sign_simulator(secret, body)["X-Simulator-Signature"]
    argv = ["parse-webhook", "simulator", "--body", str(fixture_path("simulator", name)),
            "--header", f"X-Simulator-Signature: {signature}", *SETTINGS, *extra]
    return run(argv, capsys)


def test_parse_webhook_prints_the_documented_json(capsys) -> None:
    code, out, err = parse_webhook("comment__reply", capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == [{
        "kind": "comment", "public": True, "external_id": "c201", "thread_external_id": "p100",
        "in_reply_to_external_id": "c200",
        "author": {"external_id": "u9", "name": "James Walker", "handle": "jwalker", "avatar_url": None,
                   "followers": 250000, "is_self": False},
        "text": "Same here. Three weeks and counting.", "created_at": "2024-06-10T06:15:20.456Z",
        "attachments": [], "target_external_id": None, "detail": {}, "account_id": "brand-42",
    }]


def test_parse_webhook_prints_attachments_and_detail_as_objects(capsys) -> None:
    _, out, _ = parse_webhook("batch__mixed", capsys)
    events = json.loads(out)
    assert [e["kind"] for e in events] == ["mention", "comment", "message", "reaction"]
    assert events[3]["detail"] == {"emoji": "❤️", "action": "react"} and "raw" not in events[3]
    _, out, _ = parse_webhook("dm__attachments", capsys)
    assert json.loads(out)[0]["attachments"][1] == {"kind": "file", "url": "https://sim.example/media/kvitto.pdf",
                                                    "mime_type": "application/pdf", "name": "kvitto.pdf"}


def test_bad_signature_exits_2_with_one_line(capsys) -> None:
    code, out, err = parse_webhook("dm__text", capsys, secret="someone-else")
    assert (code, out) == (2, "")
    assert err.startswith("invalid signature: ") and err.count("\n") == 1


def test_malformed_body_exits_2_with_one_line(capsys) -> None:
    code, out, err = parse_webhook("malformed__not_json", capsys)
    assert (code, out) == (2, "")
    assert err.startswith("malformed payload: body is not JSON") and err.count("\n") == 1


def test_unsupported_prints_an_empty_list_and_a_note(capsys) -> None:
    code, out, err = parse_webhook("unknown__type", capsys)
    assert (code, json.loads(out)) == (0, [])
    assert err.startswith("unsupported: ") and err.count("\n") == 1


def test_secrets_never_appear_in_any_output(capsys) -> None:
    outputs = [parse_webhook("text__script_injection", capsys), parse_webhook("dm__text", capsys, secret="x")]
    outputs.append(run(["parse-webhook", "simulator", "--body", "/nonexistent/body.json", *SETTINGS], capsys))
    for code, out, err in outputs:
        assert SECRET not in out + err and TOKEN not in out + err
    assert [code for code, _, _ in outputs] == [0, 2, 2]


def test_bad_settings_name_the_fields_not_the_values(capsys) -> None:
    argv = ["parse-webhook", "simulator", "--body", str(fixture_path("simulator", "dm__text")),
            "--setting", f"webhook_secret={SECRET}", "--setting", "api_token="]
    code, out, err = run(argv, capsys)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "account_id" in err and "api_token" in err and SECRET not in err


def test_unknown_connector_exits_2(capsys) -> None:
    code, _, err = run(["parse-webhook", "nope", "--body", "x"], capsys)
    assert code == 2 and "no connector 'nope'" in err


def test_headers_and_settings_must_be_pairs(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        run(["parse-webhook", "simulator", "--body", "x", "--setting", f"{SECRET}"], capsys)
    assert info.value.code == 2 and SECRET not in capsys.readouterr().err


# -- poll-once ------------------------------------------------------------------------------

def test_poll_once_prints_events_and_the_next_cursor(capsys) -> None:
    items = json.loads(load_fixture("simulator", "batch__mixed"))["events"]
    with respx.mock(base_url=BASE) as platform:
        route = platform.get("/api/events").respond(200, json={"account_id": "brand-42", "events": items, "next": "9"})
        code, out, err = run(["poll-once", "simulator", "--cursor", "4", *SETTINGS], capsys)
    assert (code, err) == (0, "")
    page = json.loads(out)
    assert page["cursor"] == "9" and [e["external_id"] for e in page["events"]][:3] == ["p102", "c202", "m302"]
    assert route.calls.last.request.url.params["after"] == "4"
    assert TOKEN not in out


def test_poll_once_rate_limited_exits_3_with_the_wait(capsys) -> None:
    with respx.mock(base_url=BASE) as platform:
        platform.get("/api/events").respond(429, headers={"Retry-After": "42"})
        code, out, err = run(["poll-once", "simulator", *SETTINGS], capsys)
    assert (code, out) == (3, "")
    assert "retry after 42 s" in err and err.count("\n") == 1


@pytest.mark.parametrize(("answer", "words"), [
    (httpx.Response(401, json={"error": "token revoked"}), "AuthFailed"),
    (httpx.ConnectError("refused"), "TransientError"),
])
def test_poll_once_other_failures_exit_2(capsys, answer, words) -> None:
    with respx.mock(base_url=BASE) as platform:
        platform.get("/api/events").mock(side_effect=[answer])
        code, out, err = run(["poll-once", "simulator", *SETTINGS], capsys)
    assert (code, out) == (2, "") and words in err and err.count("\n") == 1 and TOKEN not in err


# -- event_to_json ------------------------------------------------------------------------

def test_event_to_json_renders_utc_and_drops_raw() -> None:
    event = NormalizedEvent(kind="message", public=False, external_id="1", thread_external_id="t",
                            author=Author("a"), created_at=datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
                            raw={"secret": "stuff"})
    data = event_to_json(event)
    assert data["created_at"] == "2024-01-02T03:04:05.006Z" and "raw" not in data
    json.dumps(data)  # plain JSON types only


def test_iso_utc_converts_other_zones_and_keeps_microseconds() -> None:
    oslo = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2024, 6, 10, 8, 0, 0, 123456, tzinfo=oslo)) == "2024-06-10T06:00:00.123456Z"
