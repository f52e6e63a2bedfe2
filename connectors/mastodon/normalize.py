"""Mastodon entities -> NormalizedEvent: pure functions, no I/O (see README.md).

`parse_notifications` walks one page of Notification entities through `EVENT_PARSERS`, one small
`parse_<type>(notification, account_id)` per notification type we handle; the streaming parser
(stream.py) reuses the same Status functions. A notification that cannot be read is skipped
with a log line, so one bad item never loses the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from socialcrm.connector import Attachment, Author, MalformedPayload, NormalizedEvent
from socialcrm.payload import language_detail

from .text import html_to_text

log = logging.getLogger(__name__)

Entity = dict[str, Any]
#: `status.visibility` -> public? Followers-only ("private") is semi-private: not everyone can see it.
VISIBILITY = {"public": True, "unlisted": True, "private": False, "direct": False}
#: Mastodon's attachment types -> Attachment.kind ("gifv" is a looping soundless MP4).
MEDIA_KINDS = {"image": "image", "gifv": "video", "video": "video", "audio": "audio", "unknown": "file"}
FAVOURITE_EMOJI = "⭐"


def id_key(external_id: str) -> tuple[int, str]:
    """Order opaque ids ("not guaranteed to be a number"): by length, then lexically; never as floats."""
    return len(external_id), external_id


def newest_id(ids: Iterable[str], current: str | None = None) -> str | None:
    """The greatest id by `id_key`, or `current` when there is none greater."""
    best = current
    for value in ids:
        if best is None or id_key(value) > id_key(best):
            best = value
    return best


def is_newer(item: Any, cursor: str | None) -> bool:
    """A notification past the cursor (a server may ignore min_id); one without an id is dropped."""
    return _has_id(item) and (cursor is None or id_key(item["id"]) > id_key(cursor))


def parse_notifications(page: list[Any], account_id: str) -> list[NormalizedEvent]:
    """One page, oldest first; unhandled types and unreadable items are skipped."""
    events: list[NormalizedEvent] = []
    for item in sorted((n for n in page if _has_id(n)), key=lambda n: id_key(n["id"])):
        parser = EVENT_PARSERS.get(item.get("type"))
        if parser is None:
            continue
        try:
            events.extend(parser(item, account_id))
        except MalformedPayload as exc:
            log.warning("mastodon: skipped notification %s: %s", item["id"], exc)
    return events


def _has_id(item: Any) -> bool:
    ok = isinstance(item, dict) and isinstance(item.get("id"), str) and bool(item["id"])
    if not ok:
        log.warning("mastodon: skipped a notification without a string id")
    return ok


# -- one parser per notification type ------------------------------------------------------

def parse_mention(notification: Entity, account_id: str) -> list[NormalizedEvent]:
    """Someone mentioned the brand: a public mention/comment, or a private message."""
    return [build_status_event(_status(notification), account_id)]


def parse_update(notification: Entity, account_id: str) -> list[NormalizedEvent]:
    """A status the brand boosted was edited; only one that concerns the brand is an inbox edit."""
    status = _status(notification)
    return [build_edit_event(status, account_id)] if concerns(status, account_id) else []


def parse_favourite(notification: Entity, account_id: str) -> list[NormalizedEvent]:
    """A customer starred one of the brand's replies; stars on broadcast posts are not inbox items."""
    status = _status(notification)
    if _text(status, "in_reply_to_id") is None:
        return []
    who = build_author(notification.get("account"), account_id)
    return [NormalizedEvent(
        kind="reaction", public=_public(status), external_id=f"{status['id']}:favourite:{who.external_id}",
        thread_external_id=thread_of(status), author=who, created_at=parse_time(notification, "created_at"),
        target_external_id=status["id"], detail={"emoji": FAVOURITE_EMOJI, "action": "react", "by": who.external_id},
        raw=notification, account_id=account_id,
    )]


EVENT_PARSERS: dict[str, Callable[[Entity, str], list[NormalizedEvent]]] = {
    "mention": parse_mention,
    "update": parse_update,
    "favourite": parse_favourite,
}


# -- statuses -------------------------------------------------------------------------------

def build_status_event(status: Entity, account_id: str) -> NormalizedEvent:
    """A status as an inbox item; the brand's own status is an echo."""
    author = build_author(status.get("account"), account_id)
    public, reply_to = _public(status), _text(status, "in_reply_to_id")
    if author.is_self:
        kind = "echo"
    elif status.get("visibility") == "direct":
        kind = "message"
    else:
        kind = "comment" if reply_to else "mention"
    return NormalizedEvent(
        kind=kind, public=public, external_id=status["id"], thread_external_id=thread_of(status),
        in_reply_to_external_id=reply_to, author=author, text=status_text(status),
        created_at=parse_time(status, "created_at"), attachments=build_attachments(status),
        detail=language_detail(status.get("language")), raw=status, account_id=account_id,
    )


def build_edit_event(status: Entity, account_id: str) -> NormalizedEvent:
    """New text for a status; the id carries `edited_at` so a redelivery maps to the same edit."""
    edited = _text(status, "edited_at")
    if edited is None:
        raise MalformedPayload(f"status {status['id']}: an edit without edited_at")
    return NormalizedEvent(
        kind="edit", public=_public(status), external_id=f"{status['id']}:edit:{edited}",
        thread_external_id=thread_of(status), author=build_author(status.get("account"), account_id),
        text=status_text(status), created_at=parse_time(status, "edited_at"),
        target_external_id=status["id"], raw=status, account_id=account_id,
    )


def concerns(status: Entity, account_id: str) -> bool:
    """The brand wrote it, is mentioned in it, or is the one it answers."""
    mentioned = {m.get("id") for m in status.get("mentions") or [] if isinstance(m, dict)}
    author = status.get("account") if isinstance(status.get("account"), dict) else {}
    return account_id in mentioned or account_id in (author.get("id"), status.get("in_reply_to_account_id"))


def thread_of(status: Entity) -> str:
    """DESIGN §4: the status it answers, else its own id."""
    return _text(status, "in_reply_to_id") or status["id"]


def status_text(status: Entity) -> str:
    """Plain text; a content warning (`spoiler_text`, plain already) comes first, marked."""
    body = html_to_text(_text(status, "content") or "")
    warning = (_text(status, "spoiler_text") or "").strip()
    return f"CW: {warning}\n\n{body}".strip() if warning else body


def build_author(account: Any, own_id: str) -> Author:
    """The Account entity; `acct` is user@domain for remote accounts, the handle agents mention."""
    if not isinstance(account, dict) or not isinstance(account.get("id"), str) or not account["id"]:
        raise MalformedPayload("account is missing or has no string id")
    followers = account.get("followers_count")
    return Author(
        external_id=account["id"], name=_text(account, "display_name") or None,
        handle=_text(account, "acct"), avatar_url=_text(account, "avatar"),
        followers=followers if type(followers) is int else None, is_self=account["id"] == own_id,
    )


def build_attachments(status: Entity) -> list[Attachment]:
    """media_attachments[]: the full-size url (remote_url or preview while it is processed)."""
    media = status.get("media_attachments") or []
    if not isinstance(media, list):
        raise MalformedPayload(f"status {status['id']}: media_attachments is not a list")
    return [Attachment(kind=MEDIA_KINDS.get(m.get("type"), "file"),
                       url=m.get("url") or m.get("remote_url") or m.get("preview_url"),
                       name=m.get("description") or None)
            for m in media if isinstance(m, dict)]


def parse_time(entity: Entity, key: str) -> datetime:
    """An RFC 3339 datetime ("2019-11-23T07:49:02.064Z") -> aware UTC, milliseconds kept."""
    value = entity.get(key)
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise MalformedPayload(f"{key} is not an RFC 3339 datetime: {value!r:.40}")
    return moment


def _status(notification: Entity) -> Entity:
    status = notification.get("status")
    if not isinstance(status, dict) or not isinstance(status.get("id"), str) or not status["id"]:
        raise MalformedPayload(f"a {notification.get('type')} notification without a status")
    return status


def _public(status: Entity) -> bool:
    visibility = status.get("visibility")
    if visibility not in VISIBILITY:
        raise MalformedPayload(f"status {status['id']}: unknown visibility {visibility!r:.20}")
    return VISIBILITY[visibility]


def _text(entity: Entity, key: str) -> str | None:
    value = entity.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedPayload(f"{key} is not a string")
    return value
