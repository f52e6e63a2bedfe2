"""Simulated-platform payloads -> NormalizedEvent: pure functions, no I/O (see README.md).

`parse_body` checks the webhook envelope, `parse_items` walks its events through
`EVENT_PARSERS`, one small `parse_<type>(item, account_id)` per documented event type.
Poll pages carry the same items, so both paths share everything below the envelope.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from socialcrm.connector import (
    Attachment,
    Author,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)
from socialcrm.payload import clean_payload as clean
from socialcrm.payload import field_str as _str
from socialcrm.text import needs_cleaning, one_line

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Lone surrogates (a JSON "\ud800" escape) cannot be encoded as UTF-8 and NUL breaks
# PostgreSQL text: both become U+FFFD so that nothing downstream has to care.

Item = dict[str, Any]


def parse_body(body: bytes) -> tuple[str, list[Item]]:
    """Check the envelope `{"account_id", "events": [...]}`; MalformedPayload names what is wrong."""
    try:
        data = json.loads(body)
        data = clean(data) if needs_cleaning(body) else data
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not JSON: {one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise MalformedPayload(f"body is a JSON {type(data).__name__}, not an object")
    account_id = data.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        raise MalformedPayload("account_id is missing or not a string")
    events = data.get("events")
    if not isinstance(events, list):
        raise MalformedPayload("events is missing or not a list")
    return account_id, events


def parse_items(items: list[Any], account_id: str) -> list[NormalizedEvent]:
    """Every known item becomes events; unknown types are skipped (the platform may add some)."""
    events: list[NormalizedEvent] = []
    for index, item in enumerate(items):
        check_item(item, index)
        parser = EVENT_PARSERS.get(item["type"])
        if parser is not None:
            events.extend(parser(item, account_id))
    return events


def parse_webhook_items(items: list[Any], account_id: str) -> list[NormalizedEvent]:
    """Like parse_items, but a delivery with nothing we handle is UnsupportedEvent (answered 200)."""
    if not items:
        raise UnsupportedEvent("delivery has no events")
    events = parse_items(items, account_id)
    if not events:
        types = sorted({item["type"] for item in items})
        raise UnsupportedEvent(f"no supported events (types: {', '.join(types)})")
    return events


def check_item(item: Any, index: int) -> None:
    """Reject an item without the fields every type has, before its type is looked up."""
    if not isinstance(item, dict):
        raise MalformedPayload(f"events[{index}] is not an object")
    for key in ("id", "type"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise MalformedPayload(f"events[{index}].{key} is missing or not a non-empty string")
    if type(item.get("timestamp")) is not int:  # bool is an int too, and never a timestamp
        raise MalformedPayload(f"events[{index}].timestamp is missing or not integer milliseconds")


# -- one parser per event type ---------------------------------------------------------

def parse_post(item: Item, account_id: str) -> list[NormalizedEvent]:
    """A public post naming the brand starts its own thread."""
    return [_item_event(item, account_id, "mention", public=True, thread=item["id"])]


def parse_comment(item: Item, account_id: str) -> list[NormalizedEvent]:
    """A comment hangs under its root post; parent_id is what it answers."""
    return [_item_event(item, account_id, "comment", public=True, thread=_field(item, "thread_id"))]


def parse_dm(item: Item, account_id: str) -> list[NormalizedEvent]:
    """A private message; its thread is the customer's id."""
    return [_item_event(item, account_id, "message", public=False, thread=_field(item, "thread_id"))]


def parse_echo(item: Item, account_id: str) -> list[NormalizedEvent]:
    """Something the brand itself posted (e.g. from the platform's own app)."""
    public = _visibility(item, required=True)
    event = _item_event(item, account_id, "echo", public=public, thread=_field(item, "thread_id"))
    return [replace(event, author=replace(event.author, is_self=True))]


def parse_edit(item: Item, account_id: str) -> list[NormalizedEvent]:
    """New text for an earlier item; the id is built so a redelivery maps to the same one."""
    target = _field(item, "target_id")
    return [_change_event(item, account_id, "edit", f"{target}:edit:{item['timestamp']}", text=_text(item))]


def parse_delete(item: Item, account_id: str) -> list[NormalizedEvent]:
    """An item was removed; an item is deleted once, so the target alone identifies it."""
    return [_change_event(item, account_id, "delete", f"{_field(item, 'target_id')}:delete")]


def parse_reaction(item: Item, account_id: str) -> list[NormalizedEvent]:
    """Somebody reacted to an item; several people may react in the same millisecond."""
    target, emoji, author = _field(item, "target_id"), _field(item, "emoji"), build_author(item)
    external_id = f"{target}:reaction:{author.external_id}:{item['timestamp']}"
    return [_change_event(item, account_id, "reaction", external_id, detail={"emoji": emoji, "action": "react"})]


EVENT_PARSERS: dict[str, Callable[[Item, str], list[NormalizedEvent]]] = {
    "post": parse_post,
    "comment": parse_comment,
    "dm": parse_dm,
    "echo": parse_echo,
    "edit": parse_edit,
    "delete": parse_delete,
    "reaction": parse_reaction,
}


# -- building blocks -------------------------------------------------------------------

def _item_event(item: Item, account_id: str, kind: str, *, public: bool, thread: str) -> NormalizedEvent:
    return NormalizedEvent(
        kind=kind, public=public, external_id=item["id"], thread_external_id=thread,
        in_reply_to_external_id=_field(item, "parent_id", required=False), author=build_author(item),
        text=_text(item), created_at=build_time(item["timestamp"]),
        attachments=build_attachments(item), raw=item, account_id=account_id,
    )


def _change_event(item: Item, account_id: str, kind: str, external_id: str, *, text: str = "",
                  detail: dict[str, Any] | None = None) -> NormalizedEvent:
    # thread_id and visibility are optional here: the core finds the thread through the target.
    thread = _field(item, "thread_id", required=False) or item["target_id"]
    return NormalizedEvent(
        kind=kind, public=_visibility(item, required=False), external_id=external_id,
        thread_external_id=thread, author=build_author(item), text=text,
        created_at=build_time(item["timestamp"]), target_external_id=item["target_id"],
        detail=detail or {}, raw=item, account_id=account_id,
    )


def build_author(item: Item) -> Author:
    """The author object; followers is null when the platform does not say."""
    author, where = item.get("author"), f"item {item['id']}: author"
    if not isinstance(author, dict):
        raise MalformedPayload(f"{where} is missing or not an object")
    followers = author.get("followers")
    if followers is not None and type(followers) is not int:
        raise MalformedPayload(f"{where}.followers is not an integer or null")
    return Author(external_id=_str(author, "id", where), name=_str(author, "name", where, required=False),
                  handle=_str(author, "handle", where, required=False), followers=followers)


def build_time(millis: int) -> datetime:
    """Epoch milliseconds -> aware UTC datetime, exactly (no float rounding)."""
    try:
        return EPOCH + timedelta(milliseconds=millis)
    except OverflowError as exc:
        raise MalformedPayload(f"timestamp {millis} is out of range") from exc


def build_attachments(item: Item) -> list[Attachment]:
    """Attachments are optional; each needs a kind, the rest may be null."""
    raw, where = item.get("attachments", []), f"item {item['id']}: attachment"
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise MalformedPayload(f"item {item['id']}: attachments is not a list of objects")
    return [Attachment(kind=_str(a, "kind", where), url=_str(a, "url", where, required=False),
                       mime_type=_str(a, "mime_type", where, required=False),
                       name=_str(a, "name", where, required=False)) for a in raw]


def _text(item: Item) -> str:
    return _field(item, "text", required=False) or ""


def _field(item: Item, key: str, *, required: bool = True) -> str | None:
    return _str(item, key, f"item {item['id']}", required=required)


def _visibility(item: Item, *, required: bool) -> bool:
    value = item.get("visibility")
    if value is None and not required:
        return True
    if value not in ("public", "private"):
        raise MalformedPayload(f"item {item['id']}: visibility must be \"public\" or \"private\"")
    return value == "public"




