"""Polling the X mentions timeline through respx: paging, the cursor, ids above 2^53, poll-once."""

from __future__ import annotations

import argparse
import json
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx
from harness import load_fixture

from connectors.x import XConnector
from connectors.x.mentions import MAX_PAGES
from socialcrm.cli_tools import add_commands
from socialcrm.connector import (
    AuthFailed,
    Author,
    NormalizedEvent,
    RateLimited,
    TransientError,
)

#: Built once: loading CA certificates for every client would dominate the run time.
TLS = ssl.create_default_context()
BASE = "https://api.x.test"
BRAND_ID = "1402378515127390211"
BEARER = "app-bearer-AAAA-7f3e"
USER_TOKEN = "user-ctx-token-9c1d"
NOW = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
NOW_EPOCH = 1795593600                  # NOW as epoch seconds, written out by hand
MENTIONS = f"/2/users/{BRAND_ID}/mentions"
FIELDS = {"max_results": "100",
          "tweet.fields": "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,note_tweet,lang",
          "expansions": "author_id,referenced_tweets.id", "user.fields": "username,name,public_metrics,profile_image_url"}

P1A, P1B = "2125495956534198289", "2125495956534198288"     # one apart: the same float
P2Q, P2RT = "2125492179563455273", "2125489662981055274"
POST = "2125122241950650369"
INGRID = Author("1283749102938475521", "Ingrid Hansen", "ingridh",
                "https://pbs.twimg.com/profile_images/1283750011/ingrid_normal.jpg", 312)
SVEN = Author("987654321", "Sven Nilsson", "svenne", "https://pbs.twimg.com/profile_images/98765/sven_normal.png", 48)
JAMES = Author("1466102231001018370", "James Walker", "jwalker",
               "https://pbs.twimg.com/profile_images/1466102300/james_normal.jpg", 250000)


def mention(external_id: str, thread: str, author: Author, created_at: datetime, text: str,
            kind: str = "mention", **fields: object) -> NormalizedEvent:
    return NormalizedEvent(kind=kind, public=True, external_id=external_id, thread_external_id=thread,
                           author=author, created_at=created_at, text=text, account_id=BRAND_ID, **fields)


# Oldest first; the retweet on page 2 is skipped.
POLLED = [
    mention(P2Q, P2Q, JAMES, datetime(2026, 11, 25, 7, 30, tzinfo=UTC),
            "Finally arrived. Worth the wait, @fjordkaffe. https://t.co/Hb3kR9wQmZ"),
    mention(P1B, P1B, INGRID, datetime(2026, 11, 25, 7, 45, tzinfo=UTC),
            "@fjordkaffe Har dere Polarnatt som hele bønner også? 日本でも買えますか？", detail={"language": "no"}),
    mention(P1A, POST, SVEN, datetime(2026, 11, 25, 7, 45, tzinfo=UTC),
            "@fjordkaffe Fick paketet nu, tack! Polarnatt & kanelbulle = perfekt 👌", kind="comment",
            in_reply_to_external_id=POST, detail={"language": "sv"}),
]


def settings(**changes: str | None) -> dict[str, str]:
    values = {"user_id": BRAND_ID, "consumer_secret": "c-secret", "bearer_token": BEARER,
              "user_access_token": USER_TOKEN, "api_base_url": BASE + "/"}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture
async def connector() -> AsyncIterator[XConnector]:
    async with httpx.AsyncClient(verify=TLS) as http:
        made = XConnector.from_settings(settings(), http)
        made.clock = lambda: NOW
        yield made


@pytest.fixture
def platform() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def page(name: str) -> dict:
    return json.loads(load_fixture("x", name))


def without_raw(events: list[NormalizedEvent]) -> list[NormalizedEvent]:
    for event in events:
        assert event.raw is not None
        event.raw = None
    return events


# -- poll ---------------------------------------------------------------------------------------

async def test_poll_follows_next_token_and_returns_events_oldest_first(connector, platform) -> None:
    route = platform.get(MENTIONS).mock(side_effect=[httpx.Response(200, json=page("mentions__page_1")),
                                                     httpx.Response(200, json=page("mentions__page_2"))])
    events, cursor = await connector.poll("2125400000000000000")
    assert without_raw(events) == POLLED
    assert cursor == P1A                                     # the newest id, as exact digits
    first, second = (call.request for call in route.calls)
    assert dict(first.url.params) == {**FIELDS, "since_id": "2125400000000000000"}
    assert dict(second.url.params) == {**FIELDS, "since_id": "2125400000000000000",
                                       "pagination_token": "7140dibdnow9c7btw4b0rclkd5pdp9pn7u3pkbtp8cw5f"}
    assert first.headers["Authorization"] == f"Bearer {BEARER}"


async def test_ids_above_2_53_are_ordered_and_kept_exactly(connector, platform) -> None:
    assert int(P1A) > 2**53 and float(P1A) == float(P1B)   # as floats they would be the same post
    platform.get(MENTIONS).respond(200, json=page("mentions__page_1") | {"meta": {"result_count": 2}})
    events, cursor = await connector.poll(None)
    assert [e.external_id for e in events] == [P1B, P1A] and cursor == P1A


async def test_a_long_post_reads_its_note_tweet_text(connector, platform) -> None:
    """Posts over 280 characters come with `text` cut short and the whole text in note_tweet."""
    long_post = page("mentions__page_1")
    long_text = "@fjordkaffe " + "Polarnatt er den beste vinterkaffen dere har laget. " * 8
    long_post["data"] = [dict(long_post["data"][1], text=long_text[:270] + "…", note_tweet={"text": long_text})]
    long_post["meta"] = {"result_count": 1}
    platform.get(MENTIONS).respond(200, json=long_post)
    [event], _ = await connector.poll("1")
    assert event.text == long_text and event.external_id == P1B


async def test_first_poll_sends_no_since_id(connector, platform) -> None:
    route = platform.get(MENTIONS).respond(200, json=page("mentions__empty"))
    assert await connector.poll(None) == ([], None)
    assert dict(route.calls.last.request.url.params) == FIELDS


@pytest.mark.parametrize("cursor", ["2125400000000000000", f"2125400000000000000:{P2Q}:{P1A}"])
async def test_an_empty_page_without_data_keeps_the_cursor(connector, platform, cursor) -> None:
    platform.get(MENTIONS).respond(200, json=page("mentions__empty"))
    events, next_cursor = await connector.poll(cursor)
    # A gap being filled that turns out empty is closed: the cursor moves to the newest id it kept.
    assert events == [] and next_cursor == (cursor if ":" not in cursor else P1A)


async def test_a_poll_stops_after_max_pages_and_fills_the_gap_next_time(connector, platform) -> None:
    """Ten full pages, more still to read: nothing is skipped, then the gap is read, then new ones."""
    def newest_first(start: int, token: str | None) -> httpx.Response:
        data = page("mentions__page_1")
        data["data"] = [dict(data["data"][1], id=str(start - i)) for i in range(2)]
        data["meta"] = {"result_count": 2, **({"next_token": token} if token else {})}
        return httpx.Response(200, json=data)

    top = int(P1A)
    route = platform.get(MENTIONS).mock(side_effect=[newest_first(top - 2 * i, f"t{i}") for i in range(MAX_PAGES)])
    events, cursor = await connector.poll("2125400000000000000")
    oldest = top - 2 * MAX_PAGES + 1
    assert len(events) == 2 * MAX_PAGES and route.call_count == MAX_PAGES
    assert cursor == f"2125400000000000000:{oldest}:{top}"

    route.side_effect = [newest_first(oldest - 1, None)]
    events, cursor = await connector.poll(cursor)
    assert dict(route.calls.last.request.url.params) == {**FIELDS, "since_id": "2125400000000000000",
                                                         "until_id": str(oldest)}
    assert [e.external_id for e in events] == [str(oldest - 2), str(oldest - 1)] and cursor == str(top)


async def test_a_restart_between_polls_neither_loses_nor_duplicates(connector, platform) -> None:
    """The cursor is a string the core stores; a new connector instance continues from it."""
    platform.get(MENTIONS).mock(side_effect=[httpx.Response(200, json=page("mentions__page_1")),
                                             httpx.Response(200, json=page("mentions__page_2"))])
    first, cursor = await connector.poll(None)
    newer = page("mentions__page_1")
    newer["data"] = [dict(newer["data"][1], id=str(int(P1A) + 5))]
    newer["meta"] = {"result_count": 1}
    async with httpx.AsyncClient(verify=TLS) as http:
        restarted = XConnector.from_settings(settings(), http)
        route = platform.get(MENTIONS).respond(200, json=newer)
        second, after = await restarted.poll(cursor)
    assert route.calls.last.request.url.params["since_id"] == P1A
    ids = [e.external_id for e in first + second]
    assert ids == [P2Q, P1B, P1A, str(int(P1A) + 5)] and after == str(int(P1A) + 5)


async def test_poll_429_waits_until_x_rate_limit_reset(connector, platform) -> None:
    platform.get(MENTIONS).respond(429, headers={"x-rate-limit-reset": str(NOW_EPOCH + 417)},
                                   json={"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                                         "status": 429})
    with pytest.raises(RateLimited) as info:
        await connector.poll("1")
    assert info.value.retry_after == 417.0


@pytest.mark.parametrize("answer", [
    [], {"data": "nope"}, {"data": [{"id": 2125495956534198289, "author_id": "1", "text": "x"}]},
    {"errors": [{"title": "Forbidden", "detail": "User has been suspended"}]},
    {"data": [{"id": "1", "author_id": "2", "text": "no created_at"}], "meta": {}},
])
async def test_an_unreadable_page_is_transient(connector, platform, answer) -> None:
    platform.get(MENTIONS).respond(200, json=answer)
    with pytest.raises(TransientError):
        await connector.poll("1")


async def test_poll_without_a_bearer_token_is_auth_failed_without_calling(platform) -> None:
    route = platform.get(MENTIONS).respond(200, json=page("mentions__empty"))
    async with httpx.AsyncClient(verify=TLS) as http:
        connector = XConnector.from_settings(settings(bearer_token=None), http)
        with pytest.raises(AuthFailed, match="bearer_token"):
            await connector.poll(None)
    assert not route.called


# -- socialcrm poll-once --------------------------------------------------------------------------

def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


CLI_SETTINGS = ["--setting", f"user_id={BRAND_ID}", "--setting", f"bearer_token={BEARER}",
                "--setting", f"api_base_url={BASE}"]


def test_poll_once_prints_the_events_and_the_cursor(capsys, platform) -> None:
    route = platform.get(MENTIONS).mock(side_effect=[httpx.Response(200, json=page("mentions__page_1")),
                                                     httpx.Response(200, json=page("mentions__page_2"))])
    code, out, err = cli(["poll-once", "x", "--cursor", "2125400000000000000", *CLI_SETTINGS], capsys)
    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert printed["cursor"] == P1A
    assert [(e["kind"], e["external_id"], e["thread_external_id"]) for e in printed["events"]] == [
        ("mention", P2Q, P2Q), ("mention", P1B, P1B), ("comment", P1A, POST)]
    assert printed["events"][2]["author"]["handle"] == "svenne" and printed["events"][0]["created_at"] == "2026-11-25T07:30:00.000Z"
    assert route.calls[0].request.url.params["since_id"] == "2125400000000000000" and BEARER not in out


def test_poll_once_rate_limited_exits_3(capsys, platform) -> None:
    platform.get(MENTIONS).respond(429, headers={"x-rate-limit-reset": "1"})
    code, out, err = cli(["poll-once", "x", *CLI_SETTINGS], capsys)
    assert (code, out) == (3, "") and "rate limited: retry after 0 s" in err and BEARER not in err
