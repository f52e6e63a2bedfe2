"""Instagram webhook payloads -> NormalizedEvent: pure functions, no I/O (see README.md).

`parse_webhook` checks the envelope and walks `entry[].messaging[]` (DMs) and
`entry[].changes[]` (comments, mentions) through `EVENT_PARSERS`, item by item: an item that
cannot be read is logged and skipped, and the others of the batch still arrive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.meta_common import parse_json_object
from socialcrm.connector import (
    Attachment,
    Author,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)
from socialcrm.text import one_line

from .values import (
    build_millis,
    build_seconds,
    build_time,
    clean,
    obj,
    string,
    text_of,
)

log = logging.getLogger(__name__)

Item = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """What every item of one `entry[]` shares: the IG professional account and Meta's send time."""

    account_id: str
    time: int | None


@dataclass
class Outcome:
    events: list[NormalizedEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unhandled: set[str] = field(default_factory=set)


def parse_webhook(body: bytes) -> list[NormalizedEvent]:
    """Every readable item becomes events; MalformedPayload only when nothing could be read."""
    out = Outcome()
    for index, raw in enumerate(parse_body(body)):
        parse_entry(raw, index, out)
    if out.events:
        return out.events
    if out.problems:
        raise MalformedPayload(out.problems[0])
    raise UnsupportedEvent(f"no supported events (got: {', '.join(sorted(out.unhandled)) or 'nothing'})")


def parse_body(body: bytes) -> list[Any]:
    """The `entry` list of an `object: "instagram"` delivery, with storable strings."""
    try:
        data = parse_json_object(body, "instagram")
    except RecursionError as exc:
        raise MalformedPayload("body is nested too deeply") from exc
    except MalformedPayload as exc:  # keep the reason on one line, whatever the parser said
        raise MalformedPayload(one_line(exc)) from exc
    return clean(data["entry"])


def parse_entry(raw: Any, index: int, out: Outcome) -> None:
    try:
        entry = build_entry(raw, index)
    except MalformedPayload as exc:
        _skip(out, str(exc))
        return
    for i, item in enumerate(_list(raw, "messaging", entry)):
        _run(out, messaging_type(item), item, entry, f"entry {entry.account_id} messaging[{i}]")
    for i, change in enumerate(_list(raw, "changes", entry)):
        kind = change.get("field") if isinstance(change, dict) else None
        _run(out, kind if isinstance(kind, str) else "?", change, entry, f"entry {entry.account_id} changes[{i}]")


def build_entry(raw: Any, index: int) -> Entry:
    if not isinstance(raw, dict):
        raise MalformedPayload(f"entry[{index}] is not an object")
    account_id = string(raw, "id", f"entry[{index}]")
    time = raw.get("time")
    return Entry(account_id, time if type(time) is int else None)


def messaging_type(item: Any) -> str:
    """`message` (also echoes and unsends), `reaction`, `read`, or the unknown key it carries."""
    if not isinstance(item, dict):
        return "?"  # reported by _run
    keys = [key for key in item if key not in ("sender", "recipient", "timestamp")]
    known = [key for key in keys if key in EVENT_PARSERS]
    return (known or keys or ["?"])[0]


def _run(out: Outcome, kind: str, item: Any, entry: Entry, where: str) -> None:
    if not isinstance(item, dict):
        _skip(out, f"{where} is not an object")
        return
    parser = EVENT_PARSERS.get(kind)
    if parser is None:
        out.unhandled.add(kind)
        log.info("instagram: %s: %r is not handled, skipped", where, kind)
        return
    try:
        out.events.extend(parser(item, entry))
    except UnsupportedEvent as exc:
        out.unhandled.add(kind)
        log.info("instagram: %s: %s, skipped", where, exc)
    except MalformedPayload as exc:
        _skip(out, f"{where}: {exc}")


def _skip(out: Outcome, problem: str) -> None:
    out.problems.append(problem)
    log.warning("instagram: skipped an unreadable item: %s", problem)


def _list(raw: Item, key: str, entry: Entry) -> list[Any]:
    value = raw.get(key, [])
    if isinstance(value, list):
        return value
    log.warning("instagram: entry %s: %s is not a list, skipped", entry.account_id, key)
    return []


# -- DMs: entry[].messaging[] (timestamps in epoch milliseconds) ---------------------------

def parse_message(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """A customer's DM, the brand's own DM (`is_echo`), or an unsent one (`is_deleted`)."""
    message = obj(item, "message", "message")
    mid, sender, recipient = string(message, "mid", "message"), _party(item, "sender"), _party(item, "recipient")
    at = build_millis(item.get("timestamp"))
    if message.get("is_deleted") is True:
        return [_change(item, entry, "delete", f"{mid}:delete", mid, sender, at)]
    echo = message.get("is_echo") is True
    return [NormalizedEvent(
        kind="echo" if echo else "message", public=False, external_id=mid,
        thread_external_id=recipient if echo else sender, author=Author(sender, is_self=echo),
        created_at=at, text=text_of(message, "message"), in_reply_to_external_id=_reply_to(message),
        attachments=build_attachments(message), raw=item, account_id=entry.account_id,
    )]


def parse_reaction(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """A customer reacted to a message or took the reaction back (the brand's own send none)."""
    reaction, sender = obj(item, "reaction", "reaction"), _party(item, "sender")
    mid, millis = string(reaction, "mid", "reaction"), item.get("timestamp")
    action = reaction.get("action")
    if action not in ("react", "unreact"):
        raise MalformedPayload('reaction.action is not "react" or "unreact"')
    emoji = string(reaction, "emoji", "reaction", required=False) or ""
    return [_change(item, entry, "reaction", f"{mid}:reaction:{sender}:{millis}", mid, sender,
                    build_millis(millis), {"emoji": emoji, "action": action, "by": sender})]


def parse_read(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """The customer has seen our message `read.mid` (messaging_seen)."""
    sender = _party(item, "sender")
    mid = string(obj(item, "read", "read"), "mid", "read")
    return [_change(item, entry, "read", f"{mid}:read:{sender}", mid, sender, build_millis(item.get("timestamp")))]


def _change(item: Item, entry: Entry, kind: str, external_id: str, target: str, sender: str, at: Any,
            detail: dict[str, Any] | None = None) -> NormalizedEvent:
    return NormalizedEvent(
        kind=kind, public=False, external_id=external_id, thread_external_id=sender, author=Author(sender),
        created_at=at, target_external_id=target, detail=detail or {}, raw=item, account_id=entry.account_id,
    )


def _party(item: Item, key: str) -> str:
    return string(obj(item, key, key), "id", key)


def _reply_to(message: Item) -> str | None:
    reply_to = message.get("reply_to")
    return string(reply_to, "mid", "message.reply_to", required=False) if isinstance(reply_to, dict) else None


def build_attachments(message: Item) -> list[Attachment]:
    """`[{"type", "payload": {"url"}}]`; a type is required, the URL is not (stickers, shares)."""
    raw = message.get("attachments", [])
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise MalformedPayload("message.attachments is not a list of objects")
    return [Attachment(kind=string(a, "type", "attachment"), url=_payload_url(a)) for a in raw]


def _payload_url(attachment: Item) -> str | None:
    payload = attachment.get("payload")
    return string(payload, "url", "attachment.payload", required=False) if isinstance(payload, dict) else None


# -- public: entry[].changes[] (entry.time in epoch seconds) -------------------------------

def parse_comment(change: Item, entry: Entry) -> list[NormalizedEvent]:
    """A comment or reply on the account's media (`comments`, `live_comments`); its own are echoes."""
    value = obj(change, "value", "value")
    author = build_commenter(value, entry.account_id)
    media = string(obj(value, "media", "value.media"), "id", "value.media")
    parent = string(value, "parent_id", "value", required=False)
    return [NormalizedEvent(
        kind="echo" if author.is_self else "comment", public=True, external_id=string(value, "id", "value"),
        thread_external_id=media, author=author, created_at=comment_time(value, entry),
        text=text_of(value, "value"), in_reply_to_external_id=parent or media, raw=change,
        account_id=entry.account_id,
    )]


def parse_mention(change: Item, entry: Entry) -> list[NormalizedEvent]:
    """An @mention in a comment carries only ids: `hydrate` fetches text, author and time."""
    value = obj(change, "value", "value")
    media = string(value, "media_id", "value")
    comment = string(value, "comment_id", "value", required=False)
    if comment is None:  # a caption mention: see README ("not handled")
        raise UnsupportedEvent("a mention without comment_id (caption mention) is not handled")
    return [NormalizedEvent(
        kind="mention", public=True, external_id=comment, thread_external_id=media,
        author=unknown_author(comment), created_at=_entry_time(entry), in_reply_to_external_id=media,
        detail={"needs_fetch": True}, raw=change, account_id=entry.account_id,
    )]


def build_commenter(value: Item, account_id: str) -> Author:
    sender = obj(value, "from", "value.from")
    external_id = string(sender, "id", "value.from")
    handle = string(sender, "username", "value.from", required=False)
    return Author(external_id, handle=handle, is_self=external_id == account_id)


def comment_time(value: Item, entry: Entry) -> Any:
    """The comment's own `timestamp` where a version sends one, else when Meta sent the entry."""
    stamp = value.get("timestamp")
    if type(stamp) is int:
        return build_seconds(stamp)
    if isinstance(stamp, str):
        return build_time(stamp)
    return _entry_time(entry)


def _entry_time(entry: Entry) -> Any:
    if entry.time is None:
        raise MalformedPayload(f"entry {entry.account_id}: time is missing, and the item has no timestamp")
    return build_seconds(entry.time)


def unknown_author(comment_id: str) -> Author:
    """Until (or unless) the mention is fetched: one placeholder per comment, never shared."""
    return Author(f"unknown:{comment_id}")


EVENT_PARSERS: dict[str, Callable[[Item, Entry], list[NormalizedEvent]]] = {
    "message": parse_message,
    "reaction": parse_reaction,
    "read": parse_read,
    "comments": parse_comment,
    "live_comments": parse_comment,
    "mentions": parse_mention,
}
