"""One parser per `messages[].type` of the WhatsApp messages webhook (see README.md).

Every parser takes the message object and the change's `Context` and returns one event. All
WhatsApp conversations are private; the thread is the customer's `wa_id` (their business-scoped
user id when WhatsApp withholds the number); `context.id` is the message a reply quotes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from socialcrm.connector import (
    Attachment,
    Author,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)

#: Media arrive as ids, fetched with the access token (GET /{media-id}): the attachment url is
#: this scheme + id, which the inbox shows as text, never as a link.
MEDIA_SCHEME = "whatsapp-media:"
MEDIA_KINDS = {"image": "image", "video": "video", "audio": "audio", "document": "file", "sticker": "sticker"}
MAP_URL = "https://www.openstreetmap.org/?mlat={lat}&mlon={lon}"

Message = dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What a change value says about all its messages."""

    account_id: str                              # metadata.phone_number_id
    profiles: dict[str, dict[str, Any]]          # contacts[] by wa_id and by user_id


# -- one parser per type -----------------------------------------------------------------

def parse_text(message: Message, context: Context) -> NormalizedEvent:
    return build_message(message, context, text=_field(_part(message, "text"), "body", message))


def parse_media(message: Message, context: Context) -> NormalizedEvent:
    """image, video, audio, document, sticker: the caption is the text, the media an id."""
    kind = message["type"]
    media = _part(message, kind)
    attachment = Attachment(kind=MEDIA_KINDS[kind], url=MEDIA_SCHEME + _field(media, "id", message),
                            mime_type=_field(media, "mime_type", message, required=False),
                            name=_field(media, "filename", message, required=False))
    caption = _field(media, "caption", message, required=False) or ""
    return build_message(message, context, text=caption, attachments=[attachment])


def parse_location(message: Message, context: Context) -> NormalizedEvent:
    """A shared pin: "📍 <name, address> (lat, lon)", with a map link as its attachment."""
    location = _part(message, "location")
    lat, lon = _number(location, "latitude", message), _number(location, "longitude", message)
    name = _field(location, "name", message, required=False)
    place = ", ".join(p for p in (name, _field(location, "address", message, required=False)) if p)
    text = f"📍 {place} ({lat}, {lon})" if place else f"📍 ({lat}, {lon})"
    attachment = Attachment(kind="location", url=MAP_URL.format(lat=lat, lon=lon), name=name)
    return build_message(message, context, text=text, attachments=[attachment])


def parse_reaction(message: Message, context: Context) -> NormalizedEvent:
    """A reaction to one of our messages; WhatsApp leaves `emoji` out when it is removed."""
    reaction = _part(message, "reaction")
    target = _field(reaction, "message_id", message)
    emoji = _field(reaction, "emoji", message, required=False) or ""
    author = build_author(message, context)
    detail = {"emoji": emoji, "action": "react" if emoji else "unreact", "by": author.external_id}
    return NormalizedEvent(
        kind="reaction", public=False, external_id=_field(message, "id", message),
        thread_external_id=author.external_id, author=author, created_at=message_time(message),
        target_external_id=target, detail=detail, raw=message, account_id=context.account_id,
    )


def parse_interactive(message: Message, context: Context) -> NormalizedEvent:
    """A tap on a reply button or a list row: the chosen title is what the customer "said"."""
    interactive = _part(message, "interactive")
    choice = _field(interactive, "type", message)
    if choice not in ("button_reply", "list_reply"):
        return parse_unsupported(message, context, f"interactive {choice}")
    return build_message(message, context, text=_field(_part(interactive, choice, message), "title", message))


def parse_button(message: Message, context: Context) -> NormalizedEvent:
    """A tap on a template's quick-reply button."""
    return build_message(message, context, text=_field(_part(message, "button"), "text", message))


def parse_contacts(message: Message, context: Context) -> NormalizedEvent:
    """Shared contact cards, as one line each: "👤 <name> <phones>"."""
    cards = message.get("contacts")
    if not isinstance(cards, list) or not all(isinstance(c, dict) for c in cards):
        raise MalformedPayload(f"{_where(message)}.contacts is missing or not a list of objects")
    return build_message(message, context, text="\n".join(_card(card) for card in cards))


def parse_system(message: Message, context: Context) -> NormalizedEvent:
    """A number or user-id change: not something the customer wrote, so it must not reopen the
    24-hour window as a message would; skipped (the webhook endpoint logs it and answers 200)."""
    system = message.get("system")
    what = system.get("type") if isinstance(system, dict) else None
    raise UnsupportedEvent(f"{_where(message)}: system message ({what}) not shown")


def parse_unsupported(message: Message, context: Context, what: str | None = None) -> NormalizedEvent:
    """Kept as a visible message, so an agent knows the customer sent something."""
    if what is None:
        inner = message.get("unsupported")
        what = message["type"]
        if what == "unsupported":
            what = inner.get("type") if isinstance(inner, dict) and isinstance(inner.get("type"), str) else "unknown type"
    return build_message(message, context, text=f"(unsupported message: {what})")


EVENT_PARSERS: dict[str, Callable[[Message, Context], NormalizedEvent]] = {
    "text": parse_text,
    **{kind: parse_media for kind in MEDIA_KINDS},
    "location": parse_location,
    "reaction": parse_reaction,
    "interactive": parse_interactive,
    "button": parse_button,
    "contacts": parse_contacts,
    "system": parse_system,
    "unsupported": parse_unsupported,
}


# -- building blocks -----------------------------------------------------------------------

def build_message(message: Message, context: Context, *, text: str,
                  attachments: list[Attachment] | None = None) -> NormalizedEvent:
    author = build_author(message, context)
    return NormalizedEvent(
        kind="message", public=False, external_id=_field(message, "id", message),
        thread_external_id=author.external_id, author=author, created_at=message_time(message),
        text=text, in_reply_to_external_id=quoted_id(message), attachments=attachments or [],
        raw=message, account_id=context.account_id,
    )


def build_author(message: Message, context: Context) -> Author:
    """The customer: `from` (wa_id), or `from_user_id` when WhatsApp withholds the number."""
    sender = message.get("from") or message.get("from_user_id")
    if not isinstance(sender, str) or not sender:
        raise MalformedPayload(f"{_where(message)}.from is missing or not a string")
    contact = context.profiles.get(sender) or context.profiles.get(message.get("from_user_id") or "") or {}
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    name, username = profile.get("name"), profile.get("username")
    return Author(sender, name=name if isinstance(name, str) else None,
                  handle=username if isinstance(username, str) else None)


def quoted_id(message: Message) -> str | None:
    """`context.id`: the message this one replies to (a forwarded message has a context without it)."""
    context = message.get("context")
    quoted = context.get("id") if isinstance(context, dict) else None
    return quoted if isinstance(quoted, str) and quoted else None


def message_time(message: Message) -> datetime:
    return build_time(message.get("timestamp"), _where(message))


def build_time(value: Any, where: str) -> datetime:
    """WhatsApp `timestamp`: a string of epoch seconds -> aware UTC datetime."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is not int:
        raise MalformedPayload(f"{where}.timestamp is missing or not a string of epoch seconds")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise MalformedPayload(f"{where}.timestamp {value} is out of range") from exc


def require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{where}.{key} is missing or not a non-empty string")
    return value


def _part(obj: Message, key: str, message: Message | None = None) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise MalformedPayload(f"{_where(message or obj)}.{key} is missing or not an object")
    return value


def _field(obj: dict[str, Any], key: str, message: Message, *, required: bool = True) -> Any:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise MalformedPayload(f"{_where(message)}: {key} is missing or not a string")
    return value


def _number(obj: dict[str, Any], key: str, message: Message) -> float | int:
    value = obj.get(key)
    if type(value) not in (int, float):
        raise MalformedPayload(f"{_where(message)}: location {key} is missing or not a number")
    return value


def _card(card: dict[str, Any]) -> str:
    name = card.get("name") if isinstance(card.get("name"), dict) else {}
    phones = [p["phone"] for p in card.get("phones") or [] if isinstance(p, dict) and isinstance(p.get("phone"), str)]
    return " ".join(["👤", str(name.get("formatted_name") or "(no name)"), *phones])


def _where(message: Message) -> str:
    message_id = message.get("id")
    return f"message {message_id!r}" if message_id else "a message without id"
