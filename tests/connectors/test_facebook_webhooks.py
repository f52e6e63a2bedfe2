"""Facebook Page webhooks through the contract: every documented payload in, exact events out."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import httpx
import pytest
from harness import check_webhook, load_fixture, run_webhook

from connectors.facebook import FacebookConnector
from socialcrm.connector import (
    Attachment,
    Author,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)

SECRET = "fb-app-secret-5d1e"
PAGE = "104650212345678"
OUTLET = "209871234567890"          # a second Page of the same Meta app
POST = f"{PAGE}_1234567890123456"
C1, C2, C3 = "1234567890123456_987654321098765", "1234567890123456_987654321098766", "1234567890123456_987654321098767"

INGRID, SVEN, ASTRID, LARS = (Author(psid) for psid in
                              ("6931281043612345", "7012345678901234", "6123456789012345", "7598765432109876"))
PAGE_SELF = Author(PAGE, is_self=True)
KARI = Author("5523456789012345", "Kari Nordmann")
OLA = Author("5634567890123456", "Ola Hansen")
SIRI = Author("5745678901234567", "Siri Berg")
NORDLYS = Author(PAGE, "Nordlys Sko", is_self=True)
CDN = "https://scontent.xx.fbcdn.net/v/t1.15752-9/"
LIKE_URL = "https://scontent.xx.fbcdn.net/v/t39.1997-6/851557_369239266556155_759568595_n.png?_nc_cat=1"


def nov24(hour: int, minute: int, second: int = 0, ms: int = 0) -> datetime:
    """Written out by hand, so the expected times do not reuse the code's arithmetic."""
    return datetime(2026, 11, 24, hour, minute, second, ms * 1000, tzinfo=UTC)


def dm(kind: str, external_id: str, thread: Author | str, author: Author, at: datetime, text: str = "",
       account: str = PAGE, **fields: object) -> NormalizedEvent:
    thread_id = thread.external_id if isinstance(thread, Author) else thread
    return NormalizedEvent(kind=kind, public=False, external_id=external_id, thread_external_id=thread_id,
                           author=author, created_at=at, text=text, account_id=account, **fields)


def feed(kind: str, external_id: str, author: Author, at: datetime, text: str = "", thread: str = POST,
         **fields: object) -> NormalizedEvent:
    return NormalizedEvent(kind=kind, public=True, external_id=external_id, thread_external_id=thread,
                           author=author, created_at=at, text=text, account_id=PAGE, **fields)


MESSENGER: dict[str, list[NormalizedEvent]] = {
    # Non-ASCII arrives escaped (\u00e4); the text is the customer's own.
    "message__text": [dm("message", "m_AbQx7vNQm2Yk1zT0bGk9sQ0a1", INGRID, INGRID, nov24(9, 0, 0, 456),
                         "Hej! Var är min beställning? Ordernummer 48213.")],
    "message__reply_to": [dm("message", "m_AbQx7vNQm2Yk1zT0bGk9sQ0a2", INGRID, INGRID, nov24(9, 1, 0, 123),
                             "Och när kommer den? 😕", in_reply_to_external_id="m_PageReply0000000000000001")],
    "message__attachments": [dm("message", "m_SvenAtt0000000000000000001", SVEN, SVEN, nov24(9, 2), attachments=[
        Attachment("image", CDN + "471100_n.jpg?_nc_cat=101&oh=ab&oe=6A1B2C3D"),
        Attachment("video", "https://video.xx.fbcdn.net/v/t42.3356-2/471101_n.mp4?_nc_cat=1"),
        Attachment("audio", "https://cdn.fbsbx.com/v/t59.3654-21/471102_n.mp4/audioclip-1795510920.mp4"),
        Attachment("file", "https://cdn.fbsbx.com/v/t59.2708-21/471103_n.pdf/kvitto.pdf")])],
    # The transition payload names the like sticker twice (image + sticker): one sticker here.
    "message__like_sticker": [dm("message", "m_SvenLike00000000000000001", SVEN, SVEN, nov24(9, 3),
                                 attachments=[Attachment("sticker", LIKE_URL)])],
    "message__sticker": [dm("message", "m_AstridSticker000000000001", ASTRID, ASTRID, nov24(9, 4), attachments=[
        Attachment("sticker", "https://scontent.xx.fbcdn.net/v/t39.1997-6/126361874_215927589_n.png?_nc_cat=1")])],
    "message__fallback": [dm("message", "m_AstridLink000000000000001", ASTRID, ASTRID, nov24(9, 5),
                             "Denne her, finnes den i 39?", attachments=[Attachment(
                                 "link", "https://nordlys-sko.example/p/vinterstovel-nordlys?farge=svart",
                                 None, "Vinterstøvel Nordlys – svart")])],
    # Sent from the Page inbox: the brand's message in Sven's thread.
    "message_echo__page_inbox": [dm("echo", "m_PageEcho00000000000000001", SVEN, PAGE_SELF, nov24(9, 6),
                                    "Hei Sven! Pakken er på vei og kommer i morgen.")],
    "reaction__react": [dm("reaction", "m_PageEcho00000000000000001:reaction:7012345678901234:1795511220000",
                           SVEN, SVEN, nov24(9, 7), target_external_id="m_PageEcho00000000000000001",
                           detail={"emoji": "❤️", "action": "react", "by": "7012345678901234"})],
    "reaction__unreact": [dm("reaction", "m_PageEcho00000000000000001:reaction:7012345678901234:1795511280000",
                             SVEN, SVEN, nov24(9, 8), target_external_id="m_PageEcho00000000000000001",
                             detail={"emoji": "", "action": "unreact", "by": "7012345678901234"})],
    "read__watermark": [dm("read", "7012345678901234:read:1795511160000", SVEN, SVEN, nov24(9, 9),
                           detail={"watermark": 1795511160000})],
    # No timestamp in the documented delivery: the watermark dates it.
    "delivery__mids": [
        dm("status", "m_PageEcho00000000000000001:delivered", SVEN, SVEN, nov24(9, 6, 5),
           target_external_id="m_PageEcho00000000000000001", detail={"status": "delivered"}),
        dm("status", "m_PageReply0000000000000002:delivered", SVEN, SVEN, nov24(9, 6, 5),
           target_external_id="m_PageReply0000000000000002", detail={"status": "delivered"})],
    "delivery__watermark": [dm("status", "6931281043612345:delivered:1795511170000", INGRID, INGRID,
                               nov24(9, 6, 10), detail={"status": "delivered", "watermark": 1795511170000})],
    "postback__get_started": [dm("message", "m_LarsPostback0000000000001", LARS, LARS, nov24(9, 10), "Kom i gång")],
    "message_edit__text": [dm("edit", "m_AbQx7vNQm2Yk1zT0bGk9sQ0a1:edit:1", INGRID, INGRID, nov24(9, 11),
                              "Hej! Var är min beställning? Ordernummer 48231.",
                              target_external_id="m_AbQx7vNQm2Yk1zT0bGk9sQ0a1")],
    # While another app owns the thread, messages come as standby: still the customer's message.
    "standby__message": [dm("message", "m_LarsStandby00000000000001", LARS, LARS, nov24(9, 12),
                            "Hallå? Boten förstår mig inte.")],
}

FEED: dict[str, list[NormalizedEvent]] = {
    # A top-level comment's parent_id is the post itself.
    "feed_comment__top_level": [feed("comment", C1, KARI, nov24(9, 10), "Når åpner butikken i Tromsø? 🙂",
                                     in_reply_to_external_id=POST)],
    "feed_comment__reply": [feed("comment", C2, OLA, nov24(9, 15), "Lurer på det samme!", in_reply_to_external_id=C1)],
    "feed_comment__photo": [feed("comment", C3, OLA, nov24(9, 16), in_reply_to_external_id=C1,
                                 attachments=[Attachment("image", CDN + "471200_n.jpg?_nc_cat=104&oh=cd&oe=6A1B2C3E")])],
    # The Page's own comment (from the Page, or from Meta Business Suite): an echo.
    "feed_comment__page_echo": [feed("echo", "1234567890123456_987654321098770", NORDLYS, nov24(9, 20),
                                     "Hei Kari! Vi åpner 1. desember 🎉", in_reply_to_external_id=C1)],
    # Changes are dated by entry.time (seconds), which also tells two edits apart.
    "feed_comment__edited": [feed("edit", f"{C1}:edit:1795512300", KARI, nov24(9, 25),
                                  "Når åpner butikken i Tromsø sentrum?", target_external_id=C1)],
    "feed_comment__remove": [feed("delete", f"{C2}:delete", OLA, nov24(9, 30), target_external_id=C2)],
    "feed_comment__hide": [feed("edit", f"{C3}:hide:1795512900", OLA, nov24(9, 35), target_external_id=C3,
                                detail={"moderation": "hidden"})],
    "feed_comment__unhide": [feed("edit", f"{C3}:unhide:1795513200", OLA, nov24(9, 40), target_external_id=C3,
                                  detail={"moderation": ""})],
    # The edit came first: it targets the comment the add then creates.
    "feed_comment__edit_before_add": [
        feed("edit", "1234567890123456_987654321098799:edit:1795513501", SIRI, nov24(9, 45, 1),
             "Har dere str. 38? (rettet)", target_external_id="1234567890123456_987654321098799"),
        feed("comment", "1234567890123456_987654321098799", SIRI, nov24(9, 44), "Har dere str 38?",
             in_reply_to_external_id=POST)],
    # A visitor's post on the Page starts its own public thread.
    "feed_post__visitor": [feed("mention", f"{PAGE}_1299999999999999", Author("5856789012345678", "Bjørn Dæhlie-Olsen"),
                                nov24(9, 50), "Skoene mine gikk i stykker etter to uker. Hva gjør jeg?",
                                thread=f"{PAGE}_1299999999999999")],
    "feed_post__visitor_photo": [feed("mention", f"{PAGE}_1288888888888888", Author("5967890123456789", "Emma Lund"),
                                      nov24(9, 55), "Se her, sålen løsnet.", thread=f"{PAGE}_1288888888888888",
                                      attachments=[Attachment("image", CDN + "471300_n.jpg?_nc_cat=105")])],
}

BATCHES: dict[str, list[NormalizedEvent]] = {
    # Three entries, two Pages, two events each: every event keeps the Page it was delivered for.
    "batch__two_pages": [
        dm("message", "m_Batch000000000000000000001", INGRID, INGRID, nov24(10, 6, 40), "Hallo?"),
        dm("read", "7012345678901234:read:1795514799000", SVEN, SVEN, nov24(10, 6, 40, 500),
           detail={"watermark": 1795514799000}),
        feed("comment", "1234567890123456_987654321098800", KARI, nov24(10, 6, 50), "Takk!", in_reply_to_external_id=POST),
        feed("edit", f"{C3}:hide:1795514811", OLA, nov24(10, 6, 51), target_external_id=C3,
             detail={"moderation": "hidden"}),
        dm("message", "m_Batch000000000000000000002", ASTRID, ASTRID, nov24(10, 7), "Hei, er dette Nordlys Outlet?",
           account=OUTLET),
        dm("reaction", "m_Outlet0000000000000000001:reaction:6123456789012345:1795514820700", ASTRID, ASTRID,
           nov24(10, 7, 0, 700), account=OUTLET, target_external_id="m_Outlet0000000000000000001",
           detail={"emoji": "👍", "action": "react", "by": "6123456789012345"}),
    ],
    # A message without a mid and an entry whose time is a string are skipped; the rest arrive.
    "batch__one_bad_item": [
        dm("message", "m_Good00000000000000000000001", INGRID, INGRID, nov24(10, 23, 20), "Første"),
        dm("message", "m_Good00000000000000000000002", INGRID, INGRID, nov24(10, 23, 20, 200), "Snakk med et menneske"),
        feed("comment", "1234567890123456_987654321098900", KARI, nov24(10, 23, 30), "Hallo?",
             in_reply_to_external_id=POST),
    ],
}
EXPECTED = MESSENGER | FEED | BATCHES


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """What Meta sends; computed here independently of the connector."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def signed(name: str) -> tuple[bytes, dict[str, str]]:
    body = load_fixture("facebook", name)
    return body, sign(body)


@pytest.fixture(scope="module")
def connector() -> FacebookConnector:
    """Webhook handling is pure: one instance for the module, no token needed."""
    return FacebookConnector.from_settings({"page_id": PAGE, "app_secret": SECRET}, httpx.AsyncClient())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_events(connector: FacebookConnector, name: str) -> None:
    check_webhook(connector, *signed(name), EXPECTED[name])


def test_raw_is_the_item_each_event_came_from(connector: FacebookConnector) -> None:
    events = run_webhook(connector, *signed("batch__two_pages"))
    assert events[0].raw["message"]["mid"] == "m_Batch000000000000000000001"
    assert events[3].raw == {"field": "feed", "value": events[3].raw["value"]}
    assert events[3].raw["value"]["verb"] == "hide"


def test_redelivery_gives_the_same_ids(connector: FacebookConnector) -> None:
    """Meta retries and duplicates deliveries; the core dedupes on these ids."""
    for name in ("message__text", "reaction__react", "read__watermark", "feed_comment__edited", "delivery__mids"):
        first, second = (run_webhook(connector, *signed(name)) for _ in range(2))
        assert [e.external_id for e in first] == [e.external_id for e in second]


def test_an_edit_before_its_add_targets_the_comment_the_add_creates(connector: FacebookConnector) -> None:
    edit, add = run_webhook(connector, *signed("feed_comment__edit_before_add"))
    assert edit.kind == "edit" and add.kind == "comment"
    assert edit.target_external_id == add.external_id
    assert edit.created_at > add.created_at  # so the core keeps the edited text once both are in


def test_every_event_of_a_batch_keeps_its_page(connector: FacebookConnector) -> None:
    events = run_webhook(connector, *signed("batch__two_pages"))
    assert [e.account_id for e in events] == [PAGE, PAGE, PAGE, PAGE, OUTLET, OUTLET]
    assert connector.account_id() == PAGE


@pytest.mark.parametrize(("name", "types"), [
    ("unknown__messaging_optin", "optin"),
    ("unknown__feed_reaction", "feed_reaction"),
    ("feed_post__page_own", "feed_post"),     # the Page's own post is publishing, not a conversation
])
def test_understood_but_unhandled_is_unsupported(connector: FacebookConnector, name: str, types: str) -> None:
    with pytest.raises(UnsupportedEvent, match=f"types: {types}"):
        run_webhook(connector, *signed(name))


@pytest.mark.parametrize(("name", "reason"), [
    ("malformed__not_json", "body is not JSON"),
    ("malformed__wrong_object", "object is 'instagram', expected 'page'"),
    ("malformed__entry_not_list", "body is not an object with an 'entry' list"),
    ("malformed__missing_mid", "entry[0].messaging[0]: message.mid is missing or not a string"),
    ("malformed__string_timestamp", "timestamp is missing or not integer epoch milliseconds"),
])
def test_malformed_payload_names_the_problem_in_one_line(connector: FacebookConnector, name: str,
                                                         reason: str) -> None:
    with pytest.raises(MalformedPayload) as info:
        run_webhook(connector, *signed(name))
    assert reason in str(info.value) and "\n" not in str(info.value)
