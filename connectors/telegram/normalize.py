"""Telegram Update objects -> NormalizedEvent: pure functions, no I/O (see README.md).

A webhook delivery is one Update; a getUpdates page is a list of them. `parse_update` finds the
one field an Update carries besides `update_id` and hands it to `EVENT_PARSERS`. Message ids are
unique per chat only, so every item id is `"<chat_id>:<message_id>"`. Telegram `date` is epoch
seconds. What a message says and carries (text, caption, media) is read in content.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from socialcrm.connector import (
    Author,
    MalformedPayload,
    NormalizedEvent,
    UnsupportedEvent,
)
from socialcrm.payload import language_detail
from socialcrm.text import clean_text, clean_tree, one_line

from .content import build_content, field, integer, string

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
log = logging.getLogger(__name__)

Obj = dict[str, Any]


def parse_body(body: bytes) -> Obj:
    """One Update per delivery: a JSON object with an integer update_id."""
    try:
        update = clean(json.loads(body))
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not JSON: {one_line(exc)}") from exc
    if not isinstance(update, dict):
        raise MalformedPayload(f"body is a JSON {type(update).__name__}, not an Update object")
    integer(update, "update_id", "update")
    return update


def parse_update(update: Obj, bot_id: str) -> list[NormalizedEvent]:
    """The events of one Update; UnsupportedEvent for a type we do not handle."""
    where = f"update {update['update_id']}"
    kinds = [key for key in update if key in EVENT_PARSERS]
    if not kinds:
        others = sorted(key for key in update if key != "update_id")
        raise UnsupportedEvent(f"{where}: {', '.join(others) or 'no content'} is not handled")
    value = update[kinds[0]]
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where}.{kinds[0]} is not an object")
    return EVENT_PARSERS[kinds[0]](update, value, bot_id)


def parse_updates(items: list[Any], bot_id: str) -> tuple[list[NormalizedEvent], int | None]:
    """A getUpdates page in update_id order; a bad update is skipped with a log line, never the rest.

    Returns the events and the highest update_id seen (handled or not), for the next offset."""
    updates = []
    for index, item in enumerate(clean(items)):
        if isinstance(item, dict) and type(item.get("update_id")) is int:
            updates.append(item)
        else:
            log.warning("telegram: skipping result[%d]: not an Update with an integer update_id", index)
    events: list[NormalizedEvent] = []
    for update in sorted(updates, key=lambda u: u["update_id"]):
        try:
            events.extend(parse_update(update, bot_id))
        except UnsupportedEvent as exc:
            log.debug("telegram: %s", exc)
        except MalformedPayload as exc:
            log.warning("telegram: skipping a malformed update: %s", exc)
    return events, max((u["update_id"] for u in updates), default=None)


# -- one parser per update type ----------------------------------------------------------------

def parse_message(update: Obj, message: Obj, bot_id: str) -> list[NormalizedEvent]:
    """Private chats are private messages; groups and supergroups are public to their members."""
    return [build_item(update, message, bot_id, public_kind="comment")]


def parse_channel_post(update: Obj, message: Obj, bot_id: str) -> list[NormalizedEvent]:
    """A post in a channel the bot administers: public, a thread of its own chat."""
    return [build_item(update, message, bot_id, public_kind="mention")]


def parse_edited_message(update: Obj, message: Obj, bot_id: str) -> list[NormalizedEvent]:
    """New text for a message; the id carries edit_date, so a redelivery maps to the same one."""
    chat, where = build_chat(message, update), located(update)
    target = f"{chat['id']}:{integer(message, 'message_id', where)}"
    edit_date = integer(message, "edit_date", where)
    text, _ = build_content(message, where)
    return [NormalizedEvent(
        kind="edit", public=chat["type"] != "private", external_id=f"{target}:edit:{edit_date}",
        thread_external_id=str(chat["id"]), author=build_sender(message, chat, bot_id, where),
        created_at=build_time(edit_date), text=text, target_external_id=target, raw=update,
    )]


def parse_message_reaction(update: Obj, reaction: Obj, bot_id: str) -> list[NormalizedEvent]:
    """A person's reactions now: "react" with the emoji they just chose, "unreact" when none are left.

    The inbox keeps one reaction per person, so one event carries the new state; with several
    reactions (Telegram Premium) it is the one just added, else the first that remains."""
    where = located(update)
    chat = build_chat(reaction, update)
    target = f"{chat['id']}:{integer(reaction, 'message_id', where)}"
    date = integer(reaction, "date", where)
    author = build_actor(reaction, bot_id, where)
    old, new = emojis(reaction, "old_reaction", where), emojis(reaction, "new_reaction", where)
    if new:
        action, emoji = "react", next((e for e in new if e not in old), new[0])
    elif old:
        action, emoji = "unreact", old[0]
    else:
        raise UnsupportedEvent(f"{where}: no emoji reaction before or after (paid reactions only)")
    return [NormalizedEvent(
        kind="reaction", public=chat["type"] != "private",
        external_id=f"{target}:{action}:{author.external_id}:{date}:{emoji}",
        thread_external_id=str(chat["id"]), author=author, created_at=build_time(date),
        target_external_id=target, detail={"emoji": emoji, "action": action, "by": author.external_id},
        raw=update,
    )]


#: The bot's own status in a private chat: "kicked" when the customer blocked it, back to "member".
REACHABLE = {"kicked": False, "member": True}


def parse_my_chat_member(update: Obj, change: Obj, bot_id: str) -> list[NormalizedEvent]:
    """A customer blocked or unblocked the bot; the bot joining or leaving groups is not handled."""
    where = located(update)
    chat = build_chat(change, update)
    member = change.get("new_chat_member")
    status = string(member, "status", f"{where}.new_chat_member") if isinstance(member, dict) else None
    if status is None:
        raise MalformedPayload(f"{where}.new_chat_member is missing or not an object")
    if chat["type"] != "private" or status not in REACHABLE:
        raise UnsupportedEvent(f"{where}: bot became {status!r} in a {chat['type']} chat")
    user, date = field(change, "from", where), integer(change, "date", where)
    return [NormalizedEvent(
        kind="status", public=False, external_id=f"{chat['id']}:my_chat_member:{date}:{status}",
        thread_external_id=str(chat["id"]), author=build_user(user, bot_id, f"{where}.from"),
        created_at=build_time(date), detail={"reachable": REACHABLE[status]}, raw=update,
    )]


Parser = Callable[[Obj, Obj, str], list[NormalizedEvent]]
EVENT_PARSERS: dict[str, Parser] = {
    "message": parse_message,
    "edited_message": parse_edited_message,
    "channel_post": parse_channel_post,
    "edited_channel_post": parse_edited_message,
    "message_reaction": parse_message_reaction,
    "my_chat_member": parse_my_chat_member,
}


# -- building blocks ----------------------------------------------------------------------------

def build_item(update: Obj, message: Obj, bot_id: str, *, public_kind: str) -> NormalizedEvent:
    """A new message: the bot's own is an echo, a private chat's a message, else `public_kind`."""
    where = located(update)
    chat = build_chat(message, update)
    private = chat["type"] == "private"
    author = build_sender(message, chat, bot_id, where)
    text, attachments = build_content(message, where)
    if not text and not attachments:
        raise UnsupportedEvent(f"{where}: no text, caption or supported media (a service message?)")
    kind = "echo" if author.is_self else "message" if private else public_kind
    return NormalizedEvent(
        kind=kind, public=not private, external_id=f"{chat['id']}:{integer(message, 'message_id', where)}",
        thread_external_id=str(chat["id"]), in_reply_to_external_id=build_reply_to(message, chat["id"]),
        author=author, text=text, created_at=build_time(integer(message, "date", where)),
        attachments=attachments, detail=sender_language(message), raw=update,
    )


def sender_language(message: Obj) -> dict[str, str]:
    """The person's `from.language_code`: their Telegram app's language, not the message's.

    A message sent for a chat (sender_chat: channels, anonymous admins) has no person's language."""
    user = message.get("from")
    if isinstance(message.get("sender_chat"), dict) or not isinstance(user, dict):
        return {}
    return language_detail(user.get("language_code"))


def located(update: Obj) -> str:
    """Where in the delivery a problem is, for one-line MalformedPayload reasons."""
    return f"update {update['update_id']}." + next(key for key in update if key in EVENT_PARSERS)


def build_chat(obj: Obj, update: Obj) -> Obj:
    """The chat with an integer id and a known type (private, group, supergroup, channel)."""
    where = f"{located(update)}.chat"
    chat = field(obj, "chat", located(update))
    integer(chat, "id", where)
    if chat.get("type") not in ("private", "group", "supergroup", "channel"):
        raise MalformedPayload(f"{where}.type is not private, group, supergroup or channel")
    return chat


def build_sender(message: Obj, chat: Obj, bot_id: str, where: str) -> Author:
    """sender_chat when a message speaks for a chat (channel posts, anonymous admins), else from."""
    if isinstance(message.get("sender_chat"), dict):
        return build_chat_author(message["sender_chat"], f"{where}.sender_chat")
    if isinstance(message.get("from"), dict):
        return build_user(message["from"], bot_id, f"{where}.from")
    if chat["type"] == "channel":
        return build_chat_author(chat, f"{where}.chat")
    raise MalformedPayload(f"{where} has no sender (from or sender_chat)")


def build_user(user: Obj, bot_id: str, where: str) -> Author:
    """A User; the bot itself (its id is the token's first part) is the brand's own account."""
    user_id = str(integer(user, "id", where))
    name = " ".join(p for p in (string(user, "first_name", where), string(user, "last_name", where)) if p)
    return Author(external_id=user_id, name=name or None, handle=string(user, "username", where),
                  is_self=user_id == bot_id and user.get("is_bot") is True)


def build_chat_author(chat: Obj, where: str) -> Author:
    """A chat speaking for itself: its title, or a private chat's person name."""
    name = string(chat, "title", where) or " ".join(
        p for p in (string(chat, "first_name", where), string(chat, "last_name", where)) if p)
    return Author(external_id=str(integer(chat, "id", where)), name=name or None,
                  handle=string(chat, "username", where))


def build_actor(reaction: Obj, bot_id: str, where: str) -> Author:
    """The person who reacted, or the chat they reacted for when they are anonymous."""
    if isinstance(reaction.get("user"), dict):
        return build_user(reaction["user"], bot_id, f"{where}.user")
    if isinstance(reaction.get("actor_chat"), dict):
        return build_chat_author(reaction["actor_chat"], f"{where}.actor_chat")
    raise MalformedPayload(f"{where} has neither user nor actor_chat")


def build_reply_to(message: Obj, chat_id: int) -> str | None:
    """The message this one answers; a forum topic's opening message is the topic, not an answer."""
    reply = message.get("reply_to_message")
    if not isinstance(reply, dict) or type(reply.get("message_id")) is not int or "forum_topic_created" in reply:
        return None
    return f"{chat_id}:{reply['message_id']}"


def emojis(reaction: Obj, key: str, where: str) -> list[str]:
    """ReactionTypeEmoji as the emoji, custom emoji as "custom_emoji:<id>"; paid stars are skipped."""
    items = reaction.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise MalformedPayload(f"{where}.{key} is missing or not a list of ReactionType objects")
    found = []
    for item in items:
        if item.get("type") == "emoji":
            found.append(string(item, "emoji", f"{where}.{key}", required=True))
        elif item.get("type") == "custom_emoji":
            found.append(f"custom_emoji:{string(item, 'custom_emoji_id', f'{where}.{key}', required=True)}")
    return found


def build_time(seconds: int) -> datetime:
    """Epoch seconds -> aware UTC datetime."""
    try:
        return EPOCH + timedelta(seconds=seconds)
    except OverflowError as exc:
        raise MalformedPayload(f"date {seconds} is out of range") from exc


def clean(value: Any) -> Any:
    """Make every string in a parsed JSON tree storable (lone surrogates and NUL, see clean_text)."""
    return clean_tree(value, clean_text)


