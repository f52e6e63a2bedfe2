"""Messenger webhook events (`entry[].messaging[]`, `entry[].standby[]`) -> events; pure functions.

Every Messenger event is private; its thread is the customer's Page-scoped id (PSID): the
sender of what the customer does, the recipient of what the Page sends (echoes). Timestamps
and watermarks are epoch milliseconds. Events without an id of their own (reactions, reads,
deliveries, edits) get one built from what identifies them, so a redelivery maps to it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from socialcrm.connector import Attachment, Author, MalformedPayload, NormalizedEvent

from .fields import Entry, Item, person, string, time_ms

REACTION_ACTIONS = frozenset({"react", "unreact"})


def parse_message(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """A customer's message: text, attachments, maybe quoting an earlier one (`reply_to`)."""
    message, customer = _part(item, "message"), _sender(item, entry)
    mid = string(message, "mid", "message")
    return [_item_event(item, entry, "message", mid, customer.external_id, customer, message)]


def parse_message_echo(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """Something the Page sent (our app, another app, or the Page inbox): the brand's own message."""
    message = _part(item, "message")
    mid = string(message, "mid", "message")
    page = Author(string(item.get("sender"), "id", f"echo {mid}: sender"), is_self=True)
    customer = string(item.get("recipient"), "id", f"echo {mid}: recipient")
    return [_item_event(item, entry, "echo", mid, customer, page, message)]


def parse_postback(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """A tapped button (Get Started, persistent menu, postback button): a message with its title."""
    postback, customer = _part(item, "postback"), _sender(item, entry)
    where = f"postback from {customer.external_id}"
    mid = string(postback, "mid", where, required=False)
    at = time_ms(item.get("timestamp"), f"{where}: timestamp")
    external_id = mid or f"{customer.external_id}:postback:{item['timestamp']}"
    return [NormalizedEvent(
        kind="message", public=False, external_id=external_id, thread_external_id=customer.external_id,
        author=customer, created_at=at, text=string(postback, "title", where, required=False) or "",
        raw=item, account_id=entry.page_id)]


def parse_message_edit(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """The customer changed a message's text (up to five times): one edit per `num_edit`."""
    edit, customer = _part(item, "message_edit"), _sender(item, entry)
    mid = string(edit, "mid", "message_edit")
    number = _count(edit.get("num_edit"), f"message_edit {mid}: num_edit")
    text = string(edit, "text", f"message_edit {mid}", required=False) or ""
    at = time_ms(item.get("timestamp"), f"message_edit {mid}: timestamp")
    return [_change(item, entry, "edit", f"{mid}:edit:{number}", customer, mid, at, text=text)]


def parse_reaction(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """The customer reacted to a message, or took the reaction back."""
    reaction, customer = _part(item, "reaction"), _sender(item, entry)
    mid = string(reaction, "mid", "reaction")
    action = reaction.get("action")
    if action not in REACTION_ACTIONS:
        raise MalformedPayload(f"reaction on {mid}: action must be \"react\" or \"unreact\"")
    emoji = string(reaction, "emoji", f"reaction on {mid}", required=False) or ""
    at = time_ms(item.get("timestamp"), f"reaction on {mid}: timestamp")
    external_id = f"{mid}:reaction:{customer.external_id}:{item['timestamp']}"
    detail = {"emoji": emoji, "action": action, "by": customer.external_id}
    return [_change(item, entry, "reaction", external_id, customer, mid, at, detail=detail)]


def parse_read(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """The customer read everything the Page sent up to `watermark` (ms); no message id is given."""
    read, customer = _part(item, "read"), _sender(item, entry)
    watermark = read.get("watermark")
    time_ms(watermark, "read.watermark")
    at = time_ms(item.get("timestamp"), "read: timestamp")
    return [_change(item, entry, "read", f"{customer.external_id}:read:{watermark}", customer, None, at,
                    detail={"watermark": watermark})]


def parse_delivery(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """Page messages reached the customer: one status per `mids` entry, else one by `watermark`."""
    delivery, customer = _part(item, "delivery"), _sender(item, entry)
    watermark = delivery.get("watermark")
    at = time_ms(watermark, "delivery.watermark")
    if "timestamp" in item:  # the documented example has none: then the watermark dates it
        at = time_ms(item["timestamp"], "delivery: timestamp")
    mids = delivery.get("mids") or []
    if not isinstance(mids, list) or not all(isinstance(mid, str) and mid for mid in mids):
        raise MalformedPayload("delivery.mids is not a list of message ids")
    if not mids:
        return [_change(item, entry, "status", f"{customer.external_id}:delivered:{watermark}", customer, None,
                        at, detail={"status": "delivered", "watermark": watermark})]
    return [_change(item, entry, "status", f"{mid}:delivered", customer, mid, at, detail={"status": "delivered"})
            for mid in mids]


# -- building blocks -------------------------------------------------------------------

def _item_event(item: Item, entry: Entry, kind: str, mid: str, thread: str, author: Author,
                message: Item) -> NormalizedEvent:
    where = f"{kind} {mid}"
    reply_to = message.get("reply_to")
    return NormalizedEvent(
        kind=kind, public=False, external_id=mid, thread_external_id=thread, author=author,
        created_at=time_ms(item.get("timestamp"), f"{where}: timestamp"),
        text=string(message, "text", where, required=False) or "",
        in_reply_to_external_id=string(reply_to, "mid", f"{where}: reply_to") if reply_to is not None else None,
        attachments=build_attachments(message.get("attachments"), where), raw=item, account_id=entry.page_id,
    )


def _change(item: Item, entry: Entry, kind: str, external_id: str, author: Author, target: str | None,
            at: datetime, *, text: str = "", detail: dict[str, Any] | None = None) -> NormalizedEvent:
    return NormalizedEvent(
        kind=kind, public=False, external_id=external_id, thread_external_id=author.external_id,
        author=author, created_at=at, text=text, target_external_id=target, detail=detail or {}, raw=item, account_id=entry.page_id,
    )


def build_attachments(raw: Any, where: str) -> list[Attachment]:
    """`[{"type", "payload": {"url", "sticker_id"?}, "title"?}]` -> attachments, one per sticker.

    Until 2026-08-30 a sticker came twice (an `image` with `payload.sticker_id` and a `sticker`);
    both are one sticker here. A shared link arrives as `fallback`: kind "link".
    """
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise MalformedPayload(f"{where}: attachments is not a list of objects")
    found: list[Attachment] = []
    stickers: set[Any] = set()
    for attachment in raw:
        kind = string(attachment, "type", f"{where}: attachment")
        payload = attachment.get("payload") if isinstance(attachment.get("payload"), dict) else {}
        url = payload.get("url") if isinstance(payload.get("url"), str) else None
        if kind == "sticker" or "sticker_id" in payload:
            key = payload.get("sticker_id", url)
            if key in stickers:
                continue
            stickers.add(key)
            kind = "sticker"
        title = attachment.get("title")
        found.append(Attachment("link" if kind == "fallback" else kind, url, None,
                                title if isinstance(title, str) and title else None))
    return found


def _part(item: Item, key: str) -> Item:
    value = item.get(key)
    if not isinstance(value, dict):
        raise MalformedPayload(f"{key} is not an object")
    return value


def _sender(item: Item, entry: Entry) -> Author:
    """The customer who did it; a Messenger event carries only their PSID, never a name."""
    return person(item.get("sender"), "sender", entry.page_id)


def _count(value: Any, where: str) -> int:
    """An integer, or a string of digits (the documented example quotes it)."""
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise MalformedPayload(f"{where} is missing or not an integer")
