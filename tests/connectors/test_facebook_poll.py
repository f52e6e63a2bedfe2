"""The Facebook reconciliation poll through respx: what webhooks missed, with the ids webhooks use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx
from harness import load_fixture, run_webhook
from test_facebook_webhooks import sign

from connectors.facebook import FacebookConnector
from socialcrm.connector import Attachment, Author, NormalizedEvent, TransientError

BASE = "https://graph.test"
V = "/v26.0"
PAGE = "104650212345678"
TOKEN = "EAAPollToken"
INGRID = "6931281043612345"
POST = f"{PAGE}_1234567890123456"
VISITOR_POST = f"{PAGE}_1299999999999999"
OLD_POST = f"{PAGE}_1211111111111111"
CURSOR = "1795510800"                       # 2026-11-24T09:00:00Z
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
async def connector() -> AsyncIterator[FacebookConnector]:
    settings = {"page_id": PAGE, "app_secret": "fb-app-secret-5d1e", "access_token": TOKEN, "api_base_url": BASE}
    async with httpx.AsyncClient() as http:
        fb = FacebookConnector.from_settings(settings, http)
        fb.clock = lambda: NOW
        yield fb


@pytest.fixture
def graph() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def page(data: list[dict], after: str | None = None) -> dict:
    """A Graph list page; `next` only when there is more, as Graph does."""
    paging = {"cursors": {"before": "QVFIUb4", "after": after or "QVFIUend"}}
    if after:
        paging["next"] = f"{BASE}{V}/next?after={after}&access_token=must-not-be-followed"
    return {"data": data, "paging": paging}


def no_feed(graph: respx.MockRouter) -> None:
    graph.get(f"{V}/{PAGE}/feed").respond(200, json=page([]))


def no_conversations(graph: respx.MockRouter) -> None:
    graph.get(f"{V}/{PAGE}/conversations").respond(200, json=page([]))


async def test_messenger_messages_webhooks_missed_come_with_their_mids(connector, graph) -> None:
    conversations = graph.get(f"{V}/{PAGE}/conversations").respond(200, json=page([
        {"id": "t_100001", "updated_time": "2026-11-24T09:06:00+0000"},
        {"id": "t_100002", "updated_time": "2026-11-23T18:00:00+0000"},    # not touched since the cursor
    ]))
    messages = graph.get(f"{V}/t_100001/messages").respond(200, json=page([
        {"id": "m_PageEcho00000000000000001", "created_time": "2026-11-24T09:06:00+0000",
         "from": {"id": PAGE, "name": "Nordlys Sko", "email": f"{PAGE}@facebook.com"},
         "to": {"data": [{"id": INGRID, "name": "Ingrid Berg", "email": f"{INGRID}@facebook.com"}]},
         "message": "Hei Ingrid! Den kommer i morgen."},
        {"id": "m_AbQx7vNQm2Yk1zT0bGk9sQ0a1", "created_time": "2026-11-24T09:00:00+0000",
         "from": {"id": INGRID, "name": "Ingrid Berg"}, "to": {"data": [{"id": PAGE, "name": "Nordlys Sko"}]},
         "message": "Hej! Var är min beställning? Ordernummer 48213.",
         "attachments": {"data": [{"id": "1", "mime_type": "image/jpeg", "name": "kvitto.jpg",
                                   "image_data": {"url": "https://scontent.xx.fbcdn.net/kvitto.jpg"}}]}},
        {"id": "m_Older000000000000000000001", "created_time": "2026-11-24T08:40:00+0000",
         "from": {"id": INGRID, "name": "Ingrid Berg"}, "message": "older than cursor and overlap"},
    ]))
    no_feed(graph)
    events, cursor = await connector.poll(CURSOR)
    ingrid = Author(INGRID, "Ingrid Berg")
    assert [(e.kind, e.external_id, e.thread_external_id, e.author) for e in events] == [
        ("message", "m_AbQx7vNQm2Yk1zT0bGk9sQ0a1", INGRID, ingrid),
        ("echo", "m_PageEcho00000000000000001", INGRID, Author(PAGE, "Nordlys Sko", is_self=True)),
    ]
    assert events[0].created_at == datetime(2026, 11, 24, 9, 0, tzinfo=UTC) and not events[0].public
    assert events[0].attachments == [Attachment("image", "https://scontent.xx.fbcdn.net/kvitto.jpg", "image/jpeg",
                                                "kvitto.jpg")]
    assert events[0].account_id == PAGE and events[0].raw["id"] == "m_AbQx7vNQm2Yk1zT0bGk9sQ0a1"
    assert cursor == "1795511160"                                              # the newest item, 09:06:00
    params = conversations.calls.last.request.url.params
    assert (params["platform"], params["fields"], params["limit"]) == ("messenger", "id,updated_time", "25")
    assert "created_time" in messages.calls.last.request.url.params["fields"]
    for call in graph.calls:
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}" and TOKEN not in str(call.request.url)


async def test_a_polled_message_has_the_id_its_webhook_has(connector, graph) -> None:
    """Same external_id from both paths: the core ingests it once."""
    body = load_fixture("facebook", "message__text")
    [webhook_event] = run_webhook(connector, body, {"X-Hub-Signature-256": sign(body)["X-Hub-Signature-256"]})
    graph.get(f"{V}/{PAGE}/conversations").respond(200, json=page([{"id": "t_1", "updated_time": "2026-11-24T09:00:00+0000"}]))
    graph.get(f"{V}/t_1/messages").respond(200, json=page([
        {"id": webhook_event.external_id, "created_time": "2026-11-24T09:00:00+0000",
         "from": {"id": INGRID, "name": "Ingrid Berg"}, "message": webhook_event.text}]))
    no_feed(graph)
    [polled], _ = await connector.poll(CURSOR)
    assert (polled.external_id, polled.thread_external_id, polled.kind) == \
        (webhook_event.external_id, webhook_event.thread_external_id, webhook_event.kind)


async def test_conversations_are_paged_with_the_after_cursor(connector, graph) -> None:
    route = graph.get(f"{V}/{PAGE}/conversations")
    route.side_effect = [
        httpx.Response(200, json=page([{"id": "t_1", "updated_time": "2026-11-24T11:00:00+0000"}], after="QVFIUpage2")),
        httpx.Response(200, json=page([{"id": "t_2", "updated_time": "2026-11-24T10:00:00+0000"}])),
    ]
    for thread, psid, at in (("t_1", "111", "2026-11-24T11:00:00+0000"), ("t_2", "222", "2026-11-24T10:00:00+0000")):
        graph.get(f"{V}/{thread}/messages").respond(200, json=page([
            {"id": f"m_{psid}", "created_time": at, "from": {"id": psid, "name": "Kunde"}, "message": "hei"}]))
    no_feed(graph)
    events, cursor = await connector.poll(CURSOR)
    assert [e.external_id for e in events] == ["m_222", "m_111"]                # oldest first
    assert "after" not in route.calls[0].request.url.params
    assert route.calls[1].request.url.params["after"] == "QVFIUpage2"
    assert cursor == str(int(datetime(2026, 11, 24, 11, 0, tzinfo=UTC).timestamp()))


async def test_feed_comments_and_visitor_posts_since_the_cursor(connector, graph) -> None:
    no_conversations(graph)
    graph.get(f"{V}/{PAGE}/feed").respond(200, json=page([
        {"id": VISITOR_POST, "created_time": "2026-11-24T09:50:00+0000", "updated_time": "2026-11-24T09:50:00+0000",
         "from": {"id": "5856789012345678", "name": "Bjørn Dæhlie-Olsen"}, "message": "Skoene gikk i stykker."},
        {"id": POST, "created_time": "2026-11-20T12:00:00+0000", "updated_time": "2026-11-24T09:20:00+0000",
         "from": {"id": PAGE, "name": "Nordlys Sko"}, "message": "Ny butikk i Tromsø!"},
        {"id": OLD_POST, "created_time": "2026-11-01T12:00:00+0000", "updated_time": "2026-11-02T12:00:00+0000",
         "from": {"id": PAGE, "name": "Nordlys Sko"}, "message": "Gammel nyhet"},
    ]))
    graph.get(f"{V}/{VISITOR_POST}/comments").respond(200, json=page([]))
    comments = graph.get(f"{V}/{POST}/comments").respond(200, json=page([
        {"id": "1234567890123456_987654321098770", "created_time": "2026-11-24T09:20:00+0000",
         "from": {"id": PAGE, "name": "Nordlys Sko"}, "message": "Hei Kari! Vi åpner 1. desember",
         "parent": {"id": "1234567890123456_987654321098765"}},
        {"id": "1234567890123456_987654321098767", "created_time": "2026-11-24T09:16:00+0000",
         "from": {"id": "5634567890123456", "name": "Ola Hansen"}, "parent": {"id": "1234567890123456_987654321098765"},
         "attachment": {"type": "photo", "media": {"image": {"src": "https://scontent.xx.fbcdn.net/c3.jpg"}},
                        "url": "https://www.facebook.com/photo.php?fbid=1"}},
        {"id": "1234567890123456_987654321098765", "created_time": "2026-11-24T09:10:00+0000",
         "from": {"id": "5523456789012345", "name": "Kari Nordmann"}, "message": "Når åpner butikken i Tromsø?"},
        {"id": "1234567890123456_987654321000001", "created_time": "2026-11-22T10:00:00+0000",
         "from": {"id": "5523456789012345", "name": "Kari Nordmann"}, "message": "before the cursor"},
    ]))
    events, cursor = await connector.poll(CURSOR)
    assert events == [
        NormalizedEvent("comment", True, "1234567890123456_987654321098765", POST, Author("5523456789012345", "Kari Nordmann"),
                        datetime(2026, 11, 24, 9, 10, tzinfo=UTC), "Når åpner butikken i Tromsø?",
                        in_reply_to_external_id=POST, raw=events[0].raw, account_id=PAGE),
        NormalizedEvent("comment", True, "1234567890123456_987654321098767", POST, Author("5634567890123456", "Ola Hansen"),
                        datetime(2026, 11, 24, 9, 16, tzinfo=UTC), in_reply_to_external_id="1234567890123456_987654321098765",
                        attachments=[Attachment("image", "https://scontent.xx.fbcdn.net/c3.jpg")], raw=events[1].raw,
                        account_id=PAGE),
        NormalizedEvent("echo", True, "1234567890123456_987654321098770", POST, Author(PAGE, "Nordlys Sko", is_self=True),
                        datetime(2026, 11, 24, 9, 20, tzinfo=UTC), "Hei Kari! Vi åpner 1. desember",
                        in_reply_to_external_id="1234567890123456_987654321098765", raw=events[2].raw, account_id=PAGE),
        NormalizedEvent("mention", True, VISITOR_POST, VISITOR_POST, Author("5856789012345678", "Bjørn Dæhlie-Olsen"),
                        datetime(2026, 11, 24, 9, 50, tzinfo=UTC), "Skoene gikk i stykker.", raw=events[3].raw,
                        account_id=PAGE),
    ]
    assert cursor == str(int(datetime(2026, 11, 24, 9, 50, tzinfo=UTC).timestamp()))
    params = comments.calls.last.request.url.params
    assert (params["filter"], params["order"]) == ("stream", "reverse_chronological")
    assert not any(OLD_POST in str(call.request.url) for call in graph.calls)   # not updated: no comment call


async def test_nothing_new_keeps_the_cursor(connector, graph) -> None:
    no_conversations(graph)
    no_feed(graph)
    assert await connector.poll(CURSOR) == ([], CURSOR)


async def test_overlapping_items_do_not_move_the_cursor_back(connector, graph) -> None:
    """Items from the overlap before the cursor are re-sent (no-ops for the core); the cursor stays."""
    graph.get(f"{V}/{PAGE}/conversations").respond(200, json=page([{"id": "t_1", "updated_time": "2026-11-24T08:58:00+0000"}]))
    graph.get(f"{V}/t_1/messages").respond(200, json=page([
        {"id": "m_overlap", "created_time": "2026-11-24T08:58:00+0000", "from": {"id": INGRID}, "message": "x"}]))
    no_feed(graph)
    events, cursor = await connector.poll(CURSOR)
    assert [e.external_id for e in events] == ["m_overlap"] and cursor == CURSOR


async def test_the_first_poll_looks_back_a_day(connector, graph) -> None:
    graph.get(f"{V}/{PAGE}/conversations").respond(200, json=page([{"id": "t_1", "updated_time": "2026-11-23T12:30:00+0000"}]))
    graph.get(f"{V}/t_1/messages").respond(200, json=page([
        {"id": "m_yesterday", "created_time": "2026-11-23T12:30:00+0000", "from": {"id": INGRID}, "message": "i går"},
        {"id": "m_too_old", "created_time": "2026-11-23T11:00:00+0000", "from": {"id": INGRID}, "message": "eldre"}]))
    no_feed(graph)
    events, cursor = await connector.poll(None)
    assert [e.external_id for e in events] == ["m_yesterday"]
    assert cursor == str(int(datetime(2026, 11, 23, 12, 30, tzinfo=UTC).timestamp()))


async def test_an_item_without_an_author_is_skipped_not_fatal(connector, graph) -> None:
    no_conversations(graph)
    graph.get(f"{V}/{PAGE}/feed").respond(200, json=page([
        {"id": POST, "created_time": "2026-11-20T12:00:00+0000", "updated_time": "2026-11-24T10:00:00+0000",
         "from": {"id": PAGE, "name": "Nordlys Sko"}}]))
    graph.get(f"{V}/{POST}/comments").respond(200, json=page([
        {"id": "1234567890123456_1", "created_time": "2026-11-24T10:00:00+0000", "message": "no from"},
        {"id": "1234567890123456_2", "created_time": "2026-11-24T09:59:00+0000", "from": {"id": "55"}, "message": "ok"}]))
    events, _ = await connector.poll(CURSOR)
    assert [e.external_id for e in events] == ["1234567890123456_2"]


async def test_an_unreadable_page_is_transient_so_the_poll_is_retried(connector, graph) -> None:
    graph.get(f"{V}/{PAGE}/conversations").respond(200, json={"error_msg": "no data"})
    with pytest.raises(TransientError, match="without a data list"):
        await connector.poll(CURSOR)


async def test_a_garbled_cursor_starts_over_from_a_day_back(connector, graph) -> None:
    no_conversations(graph)
    no_feed(graph)
    assert await connector.poll("not-a-time") == ([], "not-a-time")
