"""Bluesky polling and the login session through respx: the mark, paging, restarts, token renewal."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx
from harness import load_fixture, without_raw

from connectors.bluesky import BlueskyConnector
from connectors.bluesky.marks import Mark, advance, is_new, parse_mark, render_mark
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
    WebhookRequest,
)

BASE = "https://pds.test"
IDENTIFIER = "nordlysko.bsky.social"
PASSWORD = "k7qx-2mfd-9zpw-h4ne"
SETTINGS = {"identifier": IDENTIFIER, "app_password": PASSWORD, "api_base_url": BASE}
NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
SESSION = "/xrpc/com.atproto.server.createSession"
REFRESH = "/xrpc/com.atproto.server.refreshSession"
LIST = "/xrpc/app.bsky.notification.listNotifications"

ACCESS_1 = "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJIUzI1NiJ9.access-one.sig-a1"
REFRESH_1 = "eyJ0eXAiOiJyZWZyZXNoK2p3dCIsImFsZyI6IkhTMjU2In0.refresh-one.sig-r1"
ACCESS_2 = "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJIUzI1NiJ9.access-two.sig-a2"
REFRESH_2 = "eyJ0eXAiOiJyZWZyZXNoK2p3dCIsImFsZyI6IkhTMjU2In0.refresh-two.sig-r2"
SECRETS = [PASSWORD, ACCESS_1, REFRESH_1, ACCESS_2, REFRESH_2, "access-one", "refresh-one", "access-two"]

BRAND_DID = "did:plc:brandzz5kq3ocvxn7wuyi2hf"
BRAND_POST = "at://did:plc:brandzz5kq3ocvxn7wuyi2hf/app.bsky.feed.post/3lbrandpost2a"
BRAND_REPLY = "at://did:plc:brandzz5kq3ocvxn7wuyi2hf/app.bsky.feed.post/3lbzbrandre2b"
INGRID_MENTION = "at://did:plc:ingridhx4m7q2vkaoe5tzw3b/app.bsky.feed.post/3lbzingment2a"
SVEN_REPLY = "at://did:plc:svenkq7a2m4xwbt3oepzc6yh/app.bsky.feed.post/3lbzsvenrep2c"
JAMES_QUOTE = "at://did:plc:jameswz3k5vq7tmyo2bx4ahe/app.bsky.feed.post/3lbzjwquote2d"
SVEN_LIKE = "at://did:plc:svenkq7a2m4xwbt3oepzc6yh/app.bsky.feed.like/3lbzsvlike22c"
JAMES_MENTION = "at://did:plc:jameswz3k5vq7tmyo2bx4ahe/app.bsky.feed.post/3lbzjwment22a"
ASTRID_REPLY = "at://did:plc:astridq2w4e6r7t3y5u2io7p/app.bsky.feed.post/3lbzastrep22a"


def avatar(did: str, blob: str) -> str:
    return f"https://cdn.bsky.app/img/avatar/plain/{did}/{blob}@jpeg"


INGRID = Author("did:plc:ingridhx4m7q2vkaoe5tzw3b", "Ingrid Hansen", "ingridh.bsky.social",
                avatar("did:plc:ingridhx4m7q2vkaoe5tzw3b", "bafkreiingavatar2a"))
SVEN = Author("did:plc:svenkq7a2m4xwbt3oepzc6yh", "Sven Nilsson", "svenne.bsky.social",
              avatar("did:plc:svenkq7a2m4xwbt3oepzc6yh", "bafkreihsvenavatar2c"))
JAMES = Author("did:plc:jameswz3k5vq7tmyo2bx4ahe", "James Walker", "jwalker.bsky.social",
               avatar("did:plc:jameswz3k5vq7tmyo2bx4ahe", "bafkreijwavatar2d"))
ASTRID = Author("did:plc:astridq2w4e6r7t3y5u2io7p", None, "astrido.bsky.social")  # displayName ""
BRAND = Author(BRAND_DID, "Nordlys Sko", "nordlysko.bsky.social", avatar(BRAND_DID, "bafkreibrandavatar"), is_self=True)


def nov25(hour: int, minute: int, second: int, ms: int = 0) -> datetime:
    """Written out by hand, so the expected times do not reuse the code's parsing."""
    return datetime(2026, 11, 25, hour, minute, second, ms * 1000, tzinfo=UTC)


def ev(kind: str, external_id: str, thread: str, author: Author, created_at: datetime, text: str = "",
       **fields: object) -> NormalizedEvent:
    return NormalizedEvent(kind=kind, public=True, external_id=external_id, thread_external_id=thread,
                           author=author, created_at=created_at, text=text, account_id=IDENTIFIER, **fields)


# list_notifications__mentions, oldest first; the repost and the follow are skipped.
MENTIONS_EVENTS = [
    ev("mention", INGRID_MENTION, INGRID_MENTION, INGRID, nov25(8, 10, 1, 502),
       "Hei @nordlysko.bsky.social! Når kommer bestillingen min? Ordre 48213 🙏",
       attachments=[Attachment("image", None, "image/jpeg", "Ordrebekreftelse 48213")], detail={"language": "nb"}),
    ev("comment", SVEN_REPLY, BRAND_POST, SVEN, nov25(8, 11, 4, 871), "Samma problem här, ingen leverans än. 📦",
       in_reply_to_external_id=BRAND_REPLY, detail={"language": "sv"}),
    ev("mention", JAMES_QUOTE, JAMES_QUOTE, JAMES, nov25(8, 12, 9, 900),
       "Anyone else still waiting for their winter boots? 🤔", detail={"language": "en"}),
    ev("reaction", SVEN_LIKE, BRAND_POST, SVEN, nov25(8, 14, 59, 210), target_external_id=BRAND_POST,
       detail={"emoji": "❤️", "action": "react", "by": SVEN.external_id}),
]
# Its createdAt is 2030 (after indexedAt): the indexing time counts instead.
ASTRID_EVENT = ev("comment", ASTRID_REPLY, BRAND_POST, ASTRID, nov25(8, 5, 30, 300),
                  "Kan jeg bytte størrelse på støvlene? 👢", in_reply_to_external_id=BRAND_POST,
                  detail={"language": "nb"})
MARK_AFTER_MENTIONS = ('{"indexedAt":"2026-11-25T08:15:00.412Z","uris":'
                       '["at://did:plc:svenkq7a2m4xwbt3oepzc6yh/app.bsky.feed.like/3lbzsvlike22c"]}')
MARK_AT_JAMES = f'{{"indexedAt":"2026-11-25T08:02:00.000Z","uris":["{JAMES_MENTION}"]}}'


def fixture(name: str) -> dict:
    return json.loads(load_fixture("bluesky", name))


def build(http: httpx.AsyncClient) -> BlueskyConnector:
    return BlueskyConnector(BlueskyConnector.Settings.model_validate(SETTINGS), http, clock=lambda: NOW)


@pytest.fixture
async def connector() -> AsyncIterator[BlueskyConnector]:
    async with httpx.AsyncClient() as http:
        yield build(http)


@pytest.fixture
def platform() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post(SESSION, name="session").respond(200, json=fixture("create_session__ok"))
        yield router


def assert_events(got: list[NormalizedEvent], expected: list[NormalizedEvent]) -> None:
    assert [e.external_id for e in got] == [e.external_id for e in expected]
    for actual, wanted in zip(without_raw(got), without_raw(expected)):
        assert actual == wanted
    assert all(e.raw["uri"] == e.external_id for e in got), "raw is the notification itself"


# -- polling --------------------------------------------------------------------------------

async def test_first_poll_logs_in_reads_one_page_and_returns_it_oldest_first(connector, platform) -> None:
    route = platform.get(LIST).respond(200, json=fixture("list_notifications__mentions"))
    events, cursor = await connector.poll(None)
    assert_events(events, MENTIONS_EVENTS)
    assert cursor == MARK_AFTER_MENTIONS
    assert route.call_count == 1, "the first run takes the newest page only, not the whole history"
    request = route.calls.last.request
    assert dict(request.url.params) == {"limit": "50"}
    assert request.headers["Authorization"] == f"Bearer {ACCESS_1}"
    login = platform["session"].calls.last.request
    assert json.loads(login.content) == {"identifier": IDENTIFIER, "password": PASSWORD}
    assert "Authorization" not in login.headers


async def test_poll_pages_backwards_until_it_reaches_the_mark(connector, platform) -> None:
    pages = {None: fixture("list_notifications__mentions"), "1795594202118": fixture("list_notifications__page_two")}
    route = platform.get(LIST).mock(side_effect=lambda request: httpx.Response(
        200, json=pages[request.url.params.get("cursor")]))
    events, cursor = await connector.poll(MARK_AT_JAMES)
    # page two: Astrid's reply is new, starterpack-joined is skipped, James's mention is the mark.
    assert_events(events, [ASTRID_EVENT, *MENTIONS_EVENTS])
    assert cursor == MARK_AFTER_MENTIONS
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"limit": "50"}, {"limit": "50", "cursor": "1795594202118"}]


async def test_a_notification_listed_on_two_pages_is_returned_once(connector, platform) -> None:
    mentions, two = fixture("list_notifications__mentions"), fixture("list_notifications__page_two")
    # New notifications pushed the list down while we paged: page two starts with page one's last.
    shifted = {**two, "notifications": mentions["notifications"][-1:] + two["notifications"]}
    platform.get(LIST).mock(side_effect=[httpx.Response(200, json=mentions), httpx.Response(200, json=shifted)])
    events, _ = await connector.poll(MARK_AT_JAMES)
    assert [e.external_id for e in events] == [ASTRID_REPLY, *(e.external_id for e in MENTIONS_EVENTS)]


async def test_nothing_new_keeps_the_mark_exactly(connector, platform) -> None:
    route = platform.get(LIST).respond(200, json=fixture("list_notifications__mentions"))
    assert await connector.poll(MARK_AFTER_MENTIONS) == ([], MARK_AFTER_MENTIONS)
    assert route.call_count == 1


@pytest.mark.parametrize("cursor", [None, MARK_AFTER_MENTIONS])
async def test_an_empty_page_keeps_the_cursor(connector, platform, cursor) -> None:
    platform.get(LIST).respond(200, json=fixture("list_notifications__empty"))
    assert await connector.poll(cursor) == ([], cursor)


async def test_a_restart_between_two_polls_neither_loses_nor_duplicates(platform) -> None:
    newer, mentions = fixture("list_notifications__newer"), fixture("list_notifications__mentions")
    page = platform.get(LIST).respond(200, json=mentions)
    async with httpx.AsyncClient() as http:
        first, stored = await build(http).poll(None)
    # New notifications arrive while socialcrm restarts; the newest page now starts with them.
    page.respond(200, json={**newer, "notifications": newer["notifications"] + mentions["notifications"]})
    async with httpx.AsyncClient() as http:
        restarted = build(http)
        second, after = await restarted.poll(stored)
        again, _ = await restarted.poll(stored)  # the core crashed before committing: nothing is lost
        last = await restarted.poll(after)
    ids = [e.external_id for e in first + second]
    assert len(ids) == len(set(ids)) == 6
    assert [e.external_id for e in second] == [
        "at://did:plc:ingridhx4m7q2vkaoe5tzw3b/app.bsky.feed.post/3lbzingtakk2e",
        "at://did:plc:jameswz3k5vq7tmyo2bx4ahe/app.bsky.feed.like/3lbzjwlike22e"]
    assert second[0].thread_external_id == INGRID_MENTION and second[0].kind == "comment"
    assert [e.external_id for e in again] == [e.external_id for e in second]
    assert last == ([], after)
    assert platform["session"].call_count == 2, "the new instance logs in again; nothing else is kept"


async def test_paging_stops_after_ten_pages_with_a_warning(connector, platform, caplog) -> None:
    template = fixture("list_notifications__newer")["notifications"][0]

    def endless(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("cursor", "0"))
        item = {**template, "uri": f"{template['uri']}{n}", "indexedAt": f"2026-11-25T08:5{9 - n}:00.000Z"}
        return httpx.Response(200, json={"notifications": [item], "cursor": str(n + 1)})

    route = platform.get(LIST).mock(side_effect=endless)
    with caplog.at_level(logging.WARNING):
        events, cursor = await connector.poll(MARK_AFTER_MENTIONS)
    assert route.call_count == 10 and len(events) == 10
    assert [e.raw["indexedAt"][14:16] for e in events] == [str(m) for m in range(50, 60)], "oldest first"
    assert parse_mark(cursor).at == nov25(8, 59, 0)
    assert "more than 10 pages" in caplog.text


async def test_a_broken_notification_is_skipped_and_the_others_arrive(connector, platform, caplog) -> None:
    platform.get(LIST).respond(200, json=fixture("list_notifications__bad_item"))
    with caplog.at_level(logging.WARNING):
        events, cursor = await connector.poll(None)
    like, mention = events
    assert like.kind == "reaction" and like.created_at == nov25(8, 37, 0), "unreadable createdAt: indexedAt"
    assert mention.kind == "mention" and mention.text == "@nordlysko.bsky.social hjälp!"
    assert "3lbznoauth22f skipped: at://did:plc:ingridhx4m7q2vkaoe5tzw3b" in caplog.text
    assert "no readable indexedAt" in caplog.text
    assert parse_mark(cursor).at == nov25(8, 40, 0, 300)


async def test_the_brands_own_post_is_an_echo(connector, platform) -> None:
    platform.get(LIST).respond(200, json=fixture("list_notifications__echo"))
    events, _ = await connector.poll(None)
    assert_events(events, [ev("echo", BRAND_REPLY, BRAND_POST, BRAND, nov25(8, 9, 0),
                              "Beklager ventetiden, Ingrid! Vi har sendt deg en oppdatering.",
                              in_reply_to_external_id="at://did:plc:ingridhx4m7q2vkaoe5tzw3b/app.bsky.feed.post/3lbzingcom22a",
                              detail={"language": "nb"})])


@pytest.mark.parametrize("answer", [[], {"notifications": "none"}, {"cursor": "x"}])
async def test_an_unreadable_page_is_transient(connector, platform, answer) -> None:
    platform.get(LIST).respond(200, json=answer)
    with pytest.raises(TransientError, match="unreadable page"):
        await connector.poll(MARK_AFTER_MENTIONS)


async def test_an_unreadable_cursor_starts_again_from_the_newest_page(connector, platform, caplog) -> None:
    platform.get(LIST).respond(200, json=fixture("list_notifications__mentions"))
    events, cursor = await connector.poll("1795594202118")  # e.g. an API cursor stored by mistake
    assert len(events) == 4 and cursor == MARK_AFTER_MENTIONS
    assert "unreadable Bluesky poll cursor" in caplog.text


def test_the_mark_keeps_every_uri_seen_at_its_instant() -> None:
    at = nov25(8, 0, 0)
    mark = advance(None, [(at, "at://a"), (nov25(7, 0, 0), "at://old")])
    assert mark == Mark(at, frozenset({"at://a"}))
    assert is_new(at, "at://b", mark) and not is_new(at, "at://a", mark) and not is_new(nov25(7, 59, 59), "at://c", mark)
    mark = advance(mark, [(at, "at://b")])
    assert mark.uris == {"at://a", "at://b"} and parse_mark(render_mark(mark)) == mark
    assert advance(mark, []) is mark


async def test_poll_rate_limited_waits_until_ratelimit_reset(connector, platform) -> None:
    platform.get(LIST).respond(429, json=fixture("error__rate_limited"),
                               headers=fixture("error__rate_limited.headers"))
    with pytest.raises(RateLimited) as info:
        await connector.poll(None)
    assert info.value.retry_after == 42.0 and info.value.code == "RateLimitExceeded"


# -- the session ----------------------------------------------------------------------------

async def test_an_expired_token_is_refreshed_and_the_call_retried_once(connector, platform) -> None:
    route = platform.get(LIST).mock(side_effect=[httpx.Response(400, json=fixture("error__expired_token")),
                                                  httpx.Response(200, json=fixture("list_notifications__empty"))])
    refresh = platform.post(REFRESH).respond(200, json=fixture("refresh_session__ok"))
    assert await connector.poll(None) == ([], None)
    assert refresh.calls.last.request.headers["Authorization"] == f"Bearer {REFRESH_1}"
    assert [c.request.headers["Authorization"] for c in route.calls] == [f"Bearer {ACCESS_1}", f"Bearer {ACCESS_2}"]
    assert platform["session"].call_count == 1
    route.respond(400, json=fixture("error__expired_token"))
    with pytest.raises(AuthFailed):  # the refreshed token is refused too: the call is not retried again
        await connector.poll(None)
    assert route.call_count == 4 and refresh.calls.last.request.headers["Authorization"] == f"Bearer {REFRESH_2}"


async def test_a_refused_refresh_creates_a_new_session(connector, platform) -> None:
    route = platform.get(LIST).mock(side_effect=[httpx.Response(400, json=fixture("error__expired_token")),
                                                  httpx.Response(200, json=fixture("list_notifications__empty"))])
    platform.post(REFRESH).respond(400, json=fixture("error__expired_token"))
    later = {**fixture("create_session__ok"), "accessJwt": "access-three"}
    platform["session"].mock(side_effect=[httpx.Response(200, json=fixture("create_session__ok")),
                                          httpx.Response(200, json=later)])
    await connector.poll(None)
    assert route.calls.last.request.headers["Authorization"] == "Bearer access-three"


async def test_a_401_on_a_call_logs_in_again_once(connector, platform) -> None:
    route = platform.get(LIST).mock(side_effect=[httpx.Response(401, json=fixture("error__auth_required")),
                                                  httpx.Response(200, json=fixture("list_notifications__empty"))])
    refresh = platform.post(REFRESH).respond(200, json=fixture("refresh_session__ok"))
    await connector.poll(None)
    assert route.call_count == 2 and platform["session"].call_count == 2 and not refresh.called


async def test_a_bad_app_password_is_auth_failed(connector, platform) -> None:
    platform["session"].respond(401, json=fixture("error__auth_required"))
    route = platform.get(LIST).respond(200, json=fixture("list_notifications__empty"))
    for call in (connector.check(), connector.poll(None)):
        with pytest.raises(AuthFailed) as info:
            await call
        assert "refused the login for nordlysko.bsky.social (AuthenticationRequired)" in str(info.value)
        assert PASSWORD not in str(info.value)
    assert not route.called


async def test_check_creates_a_session(connector, platform) -> None:
    await connector.check()
    await connector.check()
    assert platform["session"].call_count == 2, "check always tests the credentials afresh"


async def test_secrets_never_appear_in_errors_logs_or_reprs(connector, platform, caplog) -> None:
    platform.get(LIST).respond(400, json=fixture("error__expired_token"))
    platform.post(REFRESH).respond(400, json=fixture("error__expired_token"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthFailed) as info:
        await connector.poll(None)
    session = await connector._session.current()
    texts = [str(info.value), repr(info.value), str(info.value.__cause__), caplog.text, repr(connector),
             repr(connector.settings), repr(connector._session), repr(session), str(connector.settings)]
    for secret in SECRETS:
        assert not any(secret in text for text in texts), secret


@pytest.mark.parametrize("exc", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError])
@pytest.mark.parametrize("where", ["login", "list"])
async def test_transport_errors_are_transient(connector, platform, where, exc) -> None:
    route = platform["session"] if where == "login" else platform.get(LIST)
    route.mock(side_effect=exc)
    with pytest.raises(TransientError) as info:
        await connector.poll(None)
    assert isinstance(info.value.__cause__, exc)


async def test_a_5xx_is_transient(connector, platform) -> None:
    platform.get(LIST).respond(502, json=fixture("error__internal"))
    with pytest.raises(TransientError, match="HTTP 502"):
        await connector.poll(None)


# -- the rest of the contract ----------------------------------------------------------------

async def test_webhooks_are_refused_and_capabilities_declared(connector) -> None:
    request = WebhookRequest.build("POST", "/webhooks/bluesky", {}, {}, b"{}")
    assert connector.handshake(request) is None
    with pytest.raises(InvalidSignature):
        connector.verify(request)
    with pytest.raises(UnsupportedEvent):
        connector.parse(request)
    caps = BlueskyConnector.capabilities
    assert (caps.webhook, caps.poll, caps.public_replies, caps.private_replies) == (False, True, True, False)
    assert caps.max_length_public == 300 and connector.account_id() == IDENTIFIER


def test_settings_take_a_handle_with_or_without_the_at_sign() -> None:
    settings = BlueskyConnector.Settings.model_validate({"identifier": " @nordlysko.bsky.social", "app_password": "x"})
    assert settings.identifier == IDENTIFIER and settings.api_base_url == "https://bsky.social"
    assert "x" not in repr(settings.app_password)


def test_poll_once_prints_the_events_and_the_cursor(platform, capsys) -> None:
    platform.get(LIST).respond(200, json=fixture("list_notifications__mentions"))
    parser = argparse.ArgumentParser(prog="socialcrm")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["poll-once", "bluesky", "--setting", f"identifier={IDENTIFIER}",
                              "--setting", f"app_password={PASSWORD}", "--setting", f"api_base_url={BASE}"])
    code = args.func(args)
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    page = json.loads(out)
    assert page["cursor"] == MARK_AFTER_MENTIONS
    assert [e["kind"] for e in page["events"]] == ["mention", "comment", "mention", "reaction"]
    assert page["events"][1] == {
        "kind": "comment", "public": True, "external_id": SVEN_REPLY, "thread_external_id": BRAND_POST,
        "in_reply_to_external_id": BRAND_REPLY,
        "author": {"external_id": SVEN.external_id, "name": "Sven Nilsson", "handle": "svenne.bsky.social",
                   "avatar_url": SVEN.avatar_url, "followers": None, "is_self": False},
        "text": "Samma problem här, ingen leverans än. 📦", "created_at": "2026-11-25T08:11:04.871Z",
        "attachments": [], "target_external_id": None, "detail": {"language": "sv"}, "account_id": IDENTIFIER,
    }
    assert not any(secret in out for secret in SECRETS)
