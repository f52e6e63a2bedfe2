"""Mastodon polling through respx: notifications in, events out oldest first, the cursor as documented."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx
from harness import load_fixture, webhook_request, without_raw

from connectors.mastodon import MastodonConnector
from connectors.mastodon.normalize import id_key, newest_id
from socialcrm.cli_tools import add_commands
from socialcrm.connector import (
    Attachment,
    AuthFailed,
    Author,
    InvalidSignature,
    NormalizedEvent,
    RateLimited,
    TransientError,
    UnsupportedEvent,
)

BASE = "https://social.example"
TOKEN = "mastodon-token-4f1c9e"
BRAND_ID = "109876543210987654"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
SETTINGS = {"api_base_url": BASE + "/", "access_token": TOKEN, "account_id": BRAND_ID}

INGRID = Author("110223344556677889", "Ingrid Hansen 🚲", "ingrid@fosstodon.example",
                "https://social.example/system/cache/accounts/avatars/110/223/344/original/677889a1.png", 312)
JAMES = Author("111998877665544332", "James Walker", "jwalker",
               "https://social.example/system/accounts/avatars/111/998/877/original/544332a1.png", 250000)
SVEN = Author("108112233445566778", "Sven Nilsson", "svenne@mastodon.example",
              "https://social.example/system/cache/accounts/avatars/108/112/233/original/566778a1.png", 48)


def nov25(hour: int, minute: int, second: int, ms: int = 0) -> datetime:
    """Written out by hand, so expected times do not reuse the code's parsing."""
    return datetime(2026, 11, 25, hour, minute, second, ms * 1000, tzinfo=UTC)


def ev(kind: str, public: bool, external_id: str, thread: str, author: Author, created_at: datetime,
       text: str = "", **fields: object) -> NormalizedEvent:
    return NormalizedEvent(kind=kind, public=public, external_id=external_id, thread_external_id=thread,
                           author=author, created_at=created_at, text=text, account_id=BRAND_ID, **fields)


MEDIA = "https://social.example/system/cache/media_attachments/files/113/500/"
PAGE_ONE = [
    ev("mention", True, "113500000000000100", "113500000000000100", INGRID, nov25(9, 14, 2, 940),
       "@nordlys Hei! Bakhjulet på den nye sykkelen min er allerede bøyd 😡🚲\n\n"
       "Kjøpt 3. november, ordrenummer 48213.\nKan dere hjelpe? 👩‍👩‍👧 🇳🇴",
       attachments=[Attachment("image", MEDIA + "000/original/57859aede991da25.jpeg", None,
                               "Ødelagt bakhjul, eikene er bøyd"),
                    Attachment("video", MEDIA + "001/original/bc84838f77991326.mp4", None, None)],
       detail={"language": "nb"}),
    ev("comment", True, "113500000000000200", "113499999999999100", JAMES, nov25(9, 20, 41, 77),
       "@nordlys Same here, the order page says https://nordlys.example/orders/48213/tracking?lang=en "
       "& nothing moves >:(", in_reply_to_external_id="113499999999999100", detail={"language": "en"}),
]
PAGE_TWO = [
    ev("reaction", True, "113500000000000300:favourite:110223344556677889", "113500000000000100", INGRID,
       nov25(9, 32, 12, 779), target_external_id="113500000000000300",
       detail={"emoji": "⭐", "action": "react", "by": "110223344556677889"}),
    ev("comment", True, "113500000000000400", "113500000000000300", INGRID, nov25(9, 40, 0, 1),
       "@nordlys Takk, det gjør jeg!", in_reply_to_external_id="113500000000000300", detail={"language": "nb"}),
]


@pytest.fixture
async def connector() -> AsyncIterator[MastodonConnector]:
    async with httpx.AsyncClient() as http:
        built = MastodonConnector.from_settings(SETTINGS, http)
        built.clock = lambda: NOW
        yield built


@pytest.fixture
def platform() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def answer(name: str, *, prev: str | None = None, host: str = BASE) -> httpx.Response:
    """A notifications page as the instance sends it, with its Link header when there is a newer page."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if prev is not None:
        query = "types[]=mention&types[]=update&types[]=favourite&limit=40"
        headers["Link"] = (f'<{host}/api/v1/notifications?{query}&max_id=1>; rel="next", '
                           f'<{host}/api/v1/notifications?{query}&min_id={prev}>; rel="prev"')
    return httpx.Response(200, content=load_fixture("mastodon", name), headers=headers)


def params(request: httpx.Request) -> list[tuple[str, str]]:
    return list(request.url.params.multi_items())


def assert_events(got: list[NormalizedEvent], expected: list[NormalizedEvent]) -> None:
    assert [e.external_id for e in got] == [e.external_id for e in expected]
    for actual, wanted in zip(without_raw(got), expected):
        assert actual == wanted, f"{wanted.external_id}:\n  got      {actual}\n  expected {wanted}"
    assert all(e.raw is not None for e in got)


# -- the happy paths ---------------------------------------------------------------------------

async def test_first_poll_takes_the_newest_page_oldest_first(connector, platform) -> None:
    route = platform.get("/api/v1/notifications").mock(side_effect=[answer("notifications__mention_public", prev="9999")])
    events, cursor = await connector.poll(None)
    assert_events(events, PAGE_ONE)
    assert cursor == "9999"
    assert route.call_count == 1, "nothing is newer than the newest page"
    request = route.calls.last.request
    assert params(request) == [("types[]", "mention"), ("types[]", "update"), ("types[]", "favourite"),
                               ("limit", "40")]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_poll_pages_forward_with_min_id_until_an_empty_page(connector, platform) -> None:
    route = platform.get("/api/v1/notifications").mock(side_effect=[
        answer("notifications__mention_public", prev="9999"),
        answer("notifications__page_two", prev="10002"),
        answer("notifications__empty"),
    ])
    events, cursor = await connector.poll("9997")
    assert_events(events, PAGE_ONE + PAGE_TWO)   # the follow notification (10002) is not an inbox item
    assert cursor == "10002", "ids of different lengths: 10002 is newer than 9999"
    assert [dict(call.request.url.params)["min_id"] for call in route.calls] == ["9997", "9999", "10002"]
    assert [call.request.url.params.get_list("types[]") for call in route.calls] == \
        [["mention", "update", "favourite"]] * 3


async def test_empty_page_keeps_the_cursor(connector, platform) -> None:
    route = platform.get("/api/v1/notifications").mock(side_effect=[answer("notifications__empty")])
    assert await connector.poll("10002") == ([], "10002")
    assert route.call_count == 1


async def test_restart_between_polls_neither_loses_nor_duplicates(platform) -> None:
    route = platform.get("/api/v1/notifications").mock(side_effect=[
        answer("notifications__mention_public", prev="9999"),
        answer("notifications__page_two", prev="10002"), answer("notifications__empty"),
    ])
    async with httpx.AsyncClient() as http:
        first, cursor = await MastodonConnector.from_settings(SETTINGS, http).poll(None)
    async with httpx.AsyncClient() as http:    # a new process: only the stored cursor survives
        second, cursor = await MastodonConnector.from_settings(SETTINGS, http).poll(cursor)
    assert [e.external_id for e in first + second] == [e.external_id for e in PAGE_ONE + PAGE_TWO]
    assert cursor == "10002" and dict(route.calls[1].request.url.params)["min_id"] == "9999"


# -- opaque ids ----------------------------------------------------------------------------------

def test_ids_compare_by_length_then_lexically_never_as_numbers() -> None:
    newer, older = "10000", "9999"
    assert id_key(newer) > id_key(older) and newer < older                 # plain string order is wrong
    big, bigger = "109348677773283527", "109348677773283528"
    assert float(big) == float(bigger) and id_key(bigger) > id_key(big)  # floats lose the difference
    assert newest_id(["9999", "10000", "9998"]) == "10000"
    assert newest_id([], "42") == "42" and newest_id(["41"], "42") == "42"


async def test_items_at_or_before_the_cursor_are_dropped(connector, platform) -> None:
    """A server that ignores min_id (or a replayed page) must not bring old items back."""
    page = json.loads(load_fixture("mastodon", "notifications__page_two"))
    page[0]["id"], page[1]["id"], page[2]["id"] = "100000", "99999", "10000"   # 99999 > 10000 by length
    platform.get("/api/v1/notifications").mock(side_effect=[httpx.Response(200, json=page),
                                                            httpx.Response(200, json=[])])
    events, cursor = await connector.poll("10000")
    assert [e.external_id for e in events] == ["113500000000000400"]
    assert cursor == "100000"


async def test_a_replayed_page_ends_the_poll_without_duplicates(connector, platform) -> None:
    """A server that ignores min_id answers every page with the same newest notifications."""
    route = platform.get("/api/v1/notifications").mock(
        side_effect=lambda request: answer("notifications__mention_public", prev="9999"))
    events, cursor = await connector.poll("9997")
    assert [e.external_id for e in events] == [e.external_id for e in PAGE_ONE]
    assert cursor == "9999" and route.call_count == 2


async def test_a_poll_reads_at_most_ten_pages_and_the_next_one_continues(connector, platform) -> None:
    template = json.loads(load_fixture("mastodon", "notifications__mention_direct"))[0]

    def one_more(request: httpx.Request) -> httpx.Response:
        newer = str(int(request.url.params["min_id"]) + 1)
        item = {**template, "id": newer, "status": {**template["status"], "id": f"1135{newer}"}}
        return httpx.Response(200, json=[item], headers={
            "Link": f'<{BASE}/api/v1/notifications?min_id={newer}&limit=40>; rel="prev"'})

    route = platform.get("/api/v1/notifications").mock(side_effect=one_more)
    events, cursor = await connector.poll("20000")
    assert route.call_count == 10 and len(events) == 10 and cursor == "20010"
    events, cursor = await connector.poll(cursor)
    assert events[0].external_id == "113520011" and cursor == "20020"


# -- what each notification becomes ---------------------------------------------------------------

async def poll_fixture(connector, platform, name: str, cursor: str = "5") -> tuple[list[NormalizedEvent], str]:
    platform.get("/api/v1/notifications").mock(side_effect=[answer(name), answer("notifications__empty")])
    return await connector.poll(cursor)


async def test_direct_mention_is_a_private_message(connector, platform) -> None:
    events, cursor = await poll_fixture(connector, platform, "notifications__mention_direct")
    assert_events(events, [ev("message", False, "113500000000000500", "113500000000000500", SVEN,
                              nov25(10, 2, 15, 123), "@nordlys Hej! Min beställning 48213 har inte kommit. "
                              "Jag skrev <script>alert(1)</script> i kommentarsfältet, var det fel? 😬",
                              detail={"language": "sv"})])
    assert cursor == "10010"


async def test_followers_only_mention_is_semi_private(connector, platform) -> None:
    events, _ = await poll_fixture(connector, platform, "notifications__mention_private")
    assert_events(events, [ev("mention", False, "113500000000000600", "113500000000000600", JAMES,
                              nov25(10, 30, 0, 500), "CW: personal info\n\n"
                              "@nordlys my address changed, new one is in the attached note",
                              detail={"language": "en"})])


async def test_edit_of_a_status_that_mentions_us_and_not_of_others(connector, platform) -> None:
    events, cursor = await poll_fixture(connector, platform, "notifications__update_edit")
    assert_events(events, [ev("edit", True, "113500000000000100:edit:2026-11-25T11:05:09.871Z",
                              "113500000000000100", INGRID, nov25(11, 5, 9, 871),
                              "@nordlys Hei! Bakhjulet på den nye sykkelen min er allerede bøyd 😡🚲\n\n"
                              "Kjøpt 3. november, ordrenummer 48231 (ikke 48213, beklager).",
                              target_external_id="113500000000000100")])
    assert cursor == "10021", "the skipped edit (10020) is behind us too"


async def test_an_unreadable_notification_is_skipped_not_the_page(connector, platform, caplog) -> None:
    james, ingrid = json.loads(load_fixture("mastodon", "notifications__mention_public"))
    broken = [{**james, "id": "10005", "status": None},
              {**ingrid, "id": "10004", "status": {**ingrid["status"], "created_at": "25.11.2026"}},
              {"type": "mention"}]
    platform.get("/api/v1/notifications").mock(side_effect=[httpx.Response(200, json=[*broken, james]),
                                                            httpx.Response(200, json=[])])
    events, cursor = await connector.poll("5")
    assert [e.external_id for e in events] == ["113500000000000200"]
    assert cursor == "10005" and "skipped notification 10005" in caplog.text
    assert "skipped notification 10004: created_at is not an RFC 3339 datetime" in caplog.text


@pytest.mark.parametrize("body", [b'{"error": "nope"}', b"<html>", b'"text"'])
async def test_a_page_that_is_not_a_list_is_transient(connector, platform, body) -> None:
    platform.get("/api/v1/notifications").respond(200, content=body)
    with pytest.raises(TransientError):
        await connector.poll("5")


# -- errors ------------------------------------------------------------------------------------

async def test_poll_rate_limited_waits_until_the_reset_time(connector, platform) -> None:
    headers = json.loads(load_fixture("mastodon", "error__rate_limited.headers"))
    platform.get("/api/v1/notifications").respond(429, headers=headers,
                                                  content=load_fixture("mastodon", "error__rate_limited"))
    with pytest.raises(RateLimited) as info:
        await connector.poll("5")
    assert info.value.retry_after == 300.0      # 12:05:00 reset, 12:00:00 now


@pytest.mark.parametrize(("answer_", "error"), [
    (httpx.Response(401, content=load_fixture("mastodon", "error__unauthorized")), AuthFailed),
    (httpx.Response(503, text="<html>maintenance</html>"), TransientError),
    (httpx.ConnectTimeout("slow"), TransientError),
    (httpx.ReadTimeout("slow"), TransientError),
])
async def test_poll_errors_are_mapped(connector, platform, answer_, error) -> None:
    platform.get("/api/v1/notifications").mock(side_effect=[answer_])
    with pytest.raises(error) as info:
        await connector.poll("5")
    assert type(info.value) is error and TOKEN not in str(info.value)


async def test_prev_link_to_another_host_only_lends_its_query(connector, platform) -> None:
    """The token goes only to api_base_url: a Link elsewhere gives its min_id, never its host."""
    platform.get("/api/v1/notifications").mock(side_effect=[
        answer("notifications__mention_public", prev="9999", host="https://elsewhere.example"),
        answer("notifications__empty")])
    events, _ = await connector.poll("9997")       # respx fails any call to a host it does not mock
    assert len(events) == 2


# -- account, check, webhooks, settings --------------------------------------------------------

async def test_account_id_is_read_from_the_token_once_when_not_configured(platform) -> None:
    me = platform.get("/api/v1/accounts/verify_credentials").respond(
        200, content=load_fixture("mastodon", "account__verify_credentials"))
    platform.get("/api/v1/notifications").mock(side_effect=[answer("notifications__mention_public"),
                                                            answer("notifications__empty")])
    async with httpx.AsyncClient() as http:
        connector = MastodonConnector.from_settings({"api_base_url": BASE, "access_token": TOKEN}, http)
        assert connector.account_id() is None
        events, cursor = await connector.poll(None)
        await connector.poll(cursor)
    assert connector.account_id() == BRAND_ID and {e.account_id for e in events} == {BRAND_ID}
    assert me.call_count == 1


async def test_check_accepts_the_token_of_the_configured_account(connector, platform) -> None:
    route = platform.get("/api/v1/accounts/verify_credentials").respond(
        200, content=load_fixture("mastodon", "account__verify_credentials"))
    await connector.check()
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_check_with_a_rejected_token_is_auth_failed(connector, platform) -> None:
    platform.get("/api/v1/accounts/verify_credentials").respond(
        401, content=load_fixture("mastodon", "error__unauthorized"))
    with pytest.raises(AuthFailed, match="The access token is invalid"):
        await connector.check()


async def test_check_with_another_accounts_token_is_auth_failed(platform) -> None:
    platform.get("/api/v1/accounts/verify_credentials").respond(
        200, content=load_fixture("mastodon", "account__verify_credentials"))
    async with httpx.AsyncClient() as http:
        connector = MastodonConnector.from_settings({**SETTINGS, "account_id": "1"}, http)
        with pytest.raises(AuthFailed, match="belongs to @nordlys"):
            await connector.check()


def test_webhooks_are_refused_and_polling_is_declared() -> None:
    connector = MastodonConnector.from_settings(SETTINGS, httpx.AsyncClient())
    request = webhook_request(load_fixture("mastodon", "notifications__mention_direct"), {})
    with pytest.raises(InvalidSignature):
        connector.verify(request)
    with pytest.raises(UnsupportedEvent):
        connector.parse(request)
    caps = MastodonConnector.capabilities
    assert (caps.webhook, caps.poll, caps.public_replies, caps.private_replies) == (False, True, True, True)
    assert (caps.max_length_public, caps.max_length_private, caps.private_reply_to_public) == (500, 500, False)


@pytest.mark.parametrize("bad", [{"api_base_url": "social.example", "access_token": "t"},
                                 {"api_base_url": BASE, "access_token": ""}, {"api_base_url": BASE}])
def test_settings_need_an_instance_url_and_a_token(bad) -> None:
    with pytest.raises(ValueError):
        MastodonConnector.Settings.model_validate(bad)


def test_the_token_never_shows_in_a_repr() -> None:
    settings = MastodonConnector.Settings.model_validate({**SETTINGS, "account_id": "  "})
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
    assert settings.account_id is None and settings.api_base_url == BASE


# -- socialcrm poll-once mastodon ----------------------------------------------------------------

def test_poll_once_prints_the_events_and_the_cursor(capsys) -> None:
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["poll-once", "mastodon", "--cursor", "9997", "--setting", f"api_base_url={BASE}",
                              "--setting", f"access_token={TOKEN}"])
    with respx.mock(base_url=BASE) as platform:
        platform.get("/api/v1/accounts/verify_credentials").respond(
            200, content=load_fixture("mastodon", "account__verify_credentials"))
        platform.get("/api/v1/notifications").mock(side_effect=[
            answer("notifications__mention_direct", prev="10010"), answer("notifications__empty")])
        code = args.func(args)
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert printed["cursor"] == "10010"
    assert printed["events"] == [{
        "kind": "message", "public": False, "external_id": "113500000000000500",
        "thread_external_id": "113500000000000500", "in_reply_to_external_id": None,
        "author": {"external_id": "108112233445566778", "name": "Sven Nilsson", "handle": "svenne@mastodon.example",
                   "avatar_url": "https://social.example/system/cache/accounts/avatars/108/112/233/original/566778a1.png",
                   "followers": 48, "is_self": False},
        "text": "@nordlys Hej! Min beställning 48213 har inte kommit. Jag skrev <script>alert(1)</script> "
                "i kommentarsfältet, var det fel? 😬",
        "created_at": "2026-11-25T10:02:15.123Z", "attachments": [], "target_external_id": None,
        "detail": {"language": "sv"}, "account_id": BRAND_ID,
    }]
    assert TOKEN not in out
