"""WhatsApp Cloud API webhook payloads -> NormalizedEvent: pure functions, no I/O (see README.md).

`parse_body` checks the envelope (`object`, `entry[]`), walks `entry[].changes[].value` of the
`messages` field and turns every `messages[]` item (through `EVENT_PARSERS`, in messages.py)
and every `statuses[]` item into events. A bad item is logged and skipped so that the rest of
the batch arrives; only a broken envelope, or a delivery whose every item is bad, is
`MalformedPayload`. Understood but unhandled things (other webhook fields, system messages,
statuses we do not track) are skipped too; a delivery of only those is `UnsupportedEvent`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors.meta_common import clean_json, parse_json_object
from socialcrm.connector import (
    Author,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)
from socialcrm.text import needs_cleaning

from .api import PLAIN_WORDS
from .messages import EVENT_PARSERS, Context, build_time, parse_unsupported, require_str

log = logging.getLogger(__name__)

OBJECT = "whatsapp_business_account"
FIELD = "messages"
STATUSES = ("sent", "delivered", "read", "failed")


@dataclass
class Outcome:
    """What one delivery became: events, and why the rest was skipped."""

    events: list[NormalizedEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # malformed items
    ignored: list[str] = field(default_factory=list)    # understood, not handled


def parse_body(body: bytes) -> list[NormalizedEvent]:
    """Every event of a delivery, or MalformedPayload / UnsupportedEvent when there is none."""
    data = parse_json_object(body, OBJECT)
    data = clean_json(data) if needs_cleaning(body) else data  # lone surrogates, NUL -> U+FFFD
    outcome = Outcome()
    for where, value in changes(data["entry"], outcome):
        parse_value(value, where, outcome)
    if outcome.events:
        return outcome.events
    if outcome.problems:
        extra = f" (and {len(outcome.problems) - 1} more)" if len(outcome.problems) > 1 else ""
        raise MalformedPayload(outcome.problems[0] + extra)
    raise UnsupportedEvent("; ".join(outcome.ignored) or "delivery has no messages or statuses")


def changes(entries: list[Any], outcome: Outcome) -> Iterator[tuple[str, dict[str, Any]]]:
    """The `value` of every `messages` change, with where it was; skips the others."""
    for i, entry in enumerate(entries):
        items = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(items, list):
            _skip(outcome.problems, f"entry[{i}].changes is missing or not a list")
            continue
        for j, change in enumerate(items):
            where = f"entry[{i}].changes[{j}]"
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                _skip(outcome.problems, f"{where}.value is missing or not an object")
            elif change.get("field") != FIELD:
                _skip(outcome.ignored, f"webhook field {change.get('field')!r} is not handled", level=logging.INFO)
            else:
                yield where, change["value"]


def parse_value(value: dict[str, Any], where: str, outcome: Outcome) -> None:
    """One change value: its messages and its statuses, each item on its own."""
    try:
        context = build_context(value, where)
    except MalformedPayload as exc:
        _skip(outcome.problems, str(exc))
        return
    for key, parse_one in (("messages", parse_message), ("statuses", parse_status)):
        items = value.get(key, [])
        if not isinstance(items, list):
            _skip(outcome.problems, f"{where}.value.{key} is not a list")
            continue
        for k, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise MalformedPayload(f"{where}.value.{key}[{k}] is not an object")
                outcome.events.append(parse_one(item, context))
            except MalformedPayload as exc:
                _skip(outcome.problems, str(exc))
            except UnsupportedEvent as exc:
                _skip(outcome.ignored, str(exc), level=logging.INFO)


def build_context(value: dict[str, Any], where: str) -> Context:
    """The business number the change was delivered for, and the senders' profiles."""
    metadata = value.get("metadata")
    if not isinstance(metadata, dict):
        raise MalformedPayload(f"{where}.value.metadata is missing or not an object")
    account_id = require_str(metadata, "phone_number_id", f"{where}.value.metadata")
    contacts = value.get("contacts", [])
    if not isinstance(contacts, list):
        raise MalformedPayload(f"{where}.value.contacts is not a list")
    profiles: dict[str, dict[str, Any]] = {}
    for contact in contacts:
        if isinstance(contact, dict):
            for key in ("wa_id", "user_id"):
                if isinstance(contact.get(key), str):
                    profiles[contact[key]] = contact
    return Context(account_id, profiles)


def parse_message(message: dict[str, Any], context: Context) -> NormalizedEvent:
    """A customer's message, by its type; a type we do not know is kept, visibly, as unsupported."""
    kind = require_str(message, "type", f"message {message.get('id')!r}")
    return EVENT_PARSERS.get(kind, parse_unsupported)(message, context)


def parse_status(status: dict[str, Any], context: Context) -> NormalizedEvent:
    """What happened to a message WE sent: `id` is its wamid, so it targets that message."""
    where = f"status {status.get('id')!r}"
    target, state = require_str(status, "id", where), require_str(status, "status", where)
    if state not in STATUSES:
        raise UnsupportedEvent(f"{where}: status {state!r} is not tracked")
    recipient = status.get("recipient_id") or status.get("recipient_user_id")
    if not isinstance(recipient, str) or not recipient:
        raise MalformedPayload(f"{where}.recipient_id is missing or not a string")
    detail: dict[str, Any] = {"status": state}
    if state == "failed":
        detail["error"] = error_words(status.get("errors"))
    return NormalizedEvent(
        kind="status", public=False, external_id=f"{target}:{state}", thread_external_id=recipient,
        author=Author(recipient), created_at=build_time(status.get("timestamp"), where),
        target_external_id=target, detail=detail, raw=status, account_id=context.account_id,
    )


def error_words(errors: Any) -> str:
    """`errors[]` of a failed status in plain words, by code; the title when we have none."""
    if not isinstance(errors, list):
        return ""
    words = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        code, title = error.get("code"), error.get("title") or error.get("message")
        text = PLAIN_WORDS.get(code) if type(code) is int else None
        text = text or (str(title) if title else "WhatsApp reported an error")
        words.append(f"{text} (error {code})" if code is not None else text)
    return " ".join(" ".join(words).split())


def _skip(bucket: list[str], reason: str, *, level: int = logging.WARNING) -> None:
    log.log(level, "whatsapp webhook item skipped: %s", reason)
    bucket.append(reason)
