"""The user-stream parser (SSE event blocks -> events); the live connection itself is not wired yet."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from harness import load_fixture

from connectors.mastodon.stream import parse_stream_event, split_sse_block
from socialcrm.connector import MalformedPayload

BRAND_ID = "109876543210987654"
AT = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
OUR_REPLY = load_fixture("mastodon", "status__reply_created").decode()
EDITED = json.loads(load_fixture("mastodon", "notifications__update_edit"))


def test_split_sse_block_reads_event_and_data() -> None:
    assert split_sse_block("event: update\ndata: {\"id\":\"1\"}\n") == ("update", '{"id":"1"}')
    assert split_sse_block("event: delete\r\ndata: 108914327388663283\r\n") == ("delete", "108914327388663283")
    assert split_sse_block(":thump\n") is None                      # a heartbeat comment
    assert split_sse_block("event: filters_changed\n") is None      # nothing to parse
    assert split_sse_block("data: a\ndata: b") == ("message", "a\nb")


def test_a_notification_event_is_parsed_like_a_polled_one() -> None:
    notification = json.loads(load_fixture("mastodon", "notifications__mention_direct"))[0]
    events = parse_stream_event("notification", json.dumps(notification), BRAND_ID)
    assert [(e.kind, e.public, e.external_id, e.author.handle) for e in events] == \
        [("message", False, "113500000000000500", "svenne@mastodon.example")]


def test_our_own_status_on_the_home_stream_is_an_echo() -> None:
    """The reply send() posted comes back as `update`: same id as Sent, so the core keeps one copy."""
    (event,) = parse_stream_event("update", OUR_REPLY, BRAND_ID)
    assert (event.kind, event.public, event.external_id) == ("echo", False, "113500000000000800")
    assert event.author.is_self and event.author.external_id == BRAND_ID
    assert (event.thread_external_id, event.in_reply_to_external_id) == ("113500000000000500", "113500000000000500")
    assert event.text == "@svenne Hei Sven! Pakken ble sendt i går, sporing kommer på e-post."
    assert event.created_at == datetime(2026, 11, 25, 12, 0, 1, 337000, tzinfo=UTC)


def test_someone_elses_home_timeline_status_is_not_an_inbox_item() -> None:
    other = EDITED[1]["status"]
    assert parse_stream_event("update", json.dumps(other), BRAND_ID) == []


def test_status_update_is_an_edit_when_it_concerns_us() -> None:
    (edit,) = parse_stream_event("status.update", json.dumps(EDITED[0]["status"]), BRAND_ID)
    assert (edit.kind, edit.external_id, edit.target_external_id) == \
        ("edit", "113500000000000100:edit:2026-11-25T11:05:09.871Z", "113500000000000100")
    assert "48231 (ikke 48213, beklager)" in edit.text
    assert parse_stream_event("status.update", json.dumps(EDITED[1]["status"]), BRAND_ID) == []


@pytest.mark.parametrize("data", ["113500000000000500", '"113500000000000500"', " 113500000000000500\n"])
def test_delete_carries_a_bare_id(data: str) -> None:
    (event,) = parse_stream_event("delete", data, BRAND_ID, received_at=AT)
    assert (event.kind, event.external_id, event.target_external_id, event.created_at) == \
        ("delete", "113500000000000500:delete", "113500000000000500", AT)


@pytest.mark.parametrize(("name", "data"), [("filters_changed", "undefined"), ("announcement.delete", "1"),
                                            ("conversation", "{}"), ("notifications_merged", "")])
def test_other_events_are_not_inbox_items(name: str, data: str) -> None:
    assert parse_stream_event(name, data, BRAND_ID) == []


@pytest.mark.parametrize(("name", "data"), [("update", "{not json"), ("update", "[]"), ("delete", ""),
                                            ("delete", "1 2"), ("status.update", '{"id": 5}')])
def test_malformed_events_say_why(name: str, data: str) -> None:
    with pytest.raises(MalformedPayload):
        parse_stream_event(name, data, BRAND_ID)
