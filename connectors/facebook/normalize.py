"""Page webhook deliveries -> NormalizedEvent: pure functions, no I/O (see README.md).

One delivery (`object: "page"`) holds `entry[]`, one per Page; each entry holds Messenger events
in `messaging[]` (or `standby[]` while another app owns the thread) and Page feed changes in
`changes[]`. `parse_body` walks them item by item through `EVENT_PARSERS`: an item that
cannot be read is logged and skipped, so one bad item never loses the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from connectors.meta_common import clean_json, parse_json_object
from socialcrm.connector import MalformedPayload, NormalizedEvent, UnsupportedEvent
from socialcrm.text import needs_cleaning

from . import feed, messenger
from .fields import Entry, Item

log = logging.getLogger(__name__)

Parser = Callable[[Item, Entry], list[NormalizedEvent]]

EVENT_PARSERS: dict[str, Parser] = {
    "message": messenger.parse_message,
    "message_echo": messenger.parse_message_echo,
    "message_edit": messenger.parse_message_edit,
    "reaction": messenger.parse_reaction,
    "read": messenger.parse_read,
    "delivery": messenger.parse_delivery,
    "postback": messenger.parse_postback,
    "feed_comment": feed.parse_feed_comment,
    "feed_post": feed.parse_feed_post,
}
#: Messenger event keys, in the order they are looked for in a `messaging[]` item.
MESSAGING_KEYS = ("message", "message_edit", "reaction", "read", "delivery", "postback",
                  "optin", "referral", "account_linking", "pass_thread_control", "take_thread_control")
#: Feed items that are a post on the Page (a visitor's, or the Page's own).
POST_ITEMS = frozenset({"status", "post", "photo", "video"})


def parse_body(body: bytes) -> list[NormalizedEvent]:
    """Every event of a delivery; MalformedPayload / UnsupportedEvent when there is none to give."""
    data = parse_json_object(body, "page")
    data = clean_json(data) if needs_cleaning(body) else data
    events: list[NormalizedEvent] = []
    problems: list[str] = []
    types: list[str] = []
    for where, item, entry in _items(data["entry"], problems):
        kind = event_type(item)
        types.append(kind)
        parser = EVENT_PARSERS.get(kind)
        if parser is None:
            continue
        try:
            events.extend(parser(item, entry))
        except MalformedPayload as exc:
            log.warning("facebook: skipped %s (%s): %s", where, kind, exc)
            problems.append(f"{where}: {exc}")
    if events:
        return events
    if problems:
        raise MalformedPayload(problems[0])
    raise UnsupportedEvent(f"no supported events (types: {', '.join(sorted(set(types))) or 'none'})")


def _items(entries: list[Any], problems: list[str]) -> list[tuple[str, Item, Entry]]:
    """(where, item, entry) for every Messenger event and feed change, in delivery order."""
    found: list[tuple[str, Item, Entry]] = []
    for index, raw in enumerate(entries):
        try:
            entry = build_entry(raw, index)
        except MalformedPayload as exc:
            log.warning("facebook: skipped entry[%d]: %s", index, exc)
            problems.append(str(exc))
            continue
        for container in ("messaging", "standby", "changes"):
            items = raw.get(container, [])
            if not isinstance(items, list):
                problems.append(f"entry[{index}].{container} is not a list")
                continue
            for position, item in enumerate(items):
                where = f"entry[{index}].{container}[{position}]"
                if isinstance(item, dict):
                    found.append((where, item, entry))
                else:
                    problems.append(f"{where} is not an object")
    return found


def build_entry(raw: Any, index: int) -> Entry:
    if not isinstance(raw, dict):
        raise MalformedPayload(f"entry[{index}] is not an object")
    page_id = raw.get("id")
    if not isinstance(page_id, str) or not page_id:
        raise MalformedPayload(f"entry[{index}].id is missing or not a string")
    if type(raw.get("time")) is not int:
        raise MalformedPayload(f"entry[{index}].time is missing or not an integer")
    return Entry(page_id, raw["time"])


def event_type(item: Item) -> str:
    """The EVENT_PARSERS key of an item: a Messenger event, or `feed_<item>` for a feed change."""
    if "field" in item:
        value = item.get("value")
        what = value.get("item") if isinstance(value, dict) else None
        if item["field"] != "feed" or not isinstance(what, str):
            return str(item["field"])
        return "feed_post" if what in POST_ITEMS else f"feed_{what}"
    for key in MESSAGING_KEYS:
        if key in item:
            is_echo = key == "message" and isinstance(item[key], dict) and item[key].get("is_echo") is True
            return "message_echo" if is_echo else key
    return "unknown"
