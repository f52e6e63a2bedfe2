"""Account Activity webhook payloads (v1.1 objects) -> NormalizedEvent: pure functions, no I/O.

`parse_body` checks the envelope `{"for_user_id", "<kind>_events": [...], "users": {...}}`;
`parse_delivery` walks the lists named in `EVENT_PARSERS`, one `parse_<kind>(item, delivery)`
per event list. A broken item is skipped with a log line; the envelope being broken, or every
item being broken, is MalformedPayload. Ids stay strings: they exceed 2^53.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
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
from socialcrm.payload import language_detail

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LIKE_EMOJI = "❤️"
_DIGITS = re.compile(r"[0-9]{1,20}")
_ENTITY = re.compile("&(amp|lt|gt);")
_V1_TIME = re.compile(r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) (\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2}) (\d{4})")
_MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
_MEDIA_KINDS = {"photo": "image", "video": "video", "animated_gif": "video"}

Item = dict[str, Any]


class ItemError(ValueError):
    """One event in a delivery cannot be read; the others still can."""


@dataclass(frozen=True)
class Delivery:
    account_id: str                                  # for_user_id: the subscribed brand account
    users: dict[str, Any] = field(default_factory=dict)  # DM deliveries: id -> v1.1 user


# -- envelope ----------------------------------------------------------------------------

def parse_body(body: bytes) -> tuple[Delivery, dict[str, Any]]:
    """The decoded envelope; MalformedPayload names what is wrong with it."""
    try:
        data = clean(json.loads(body))
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not JSON: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise MalformedPayload(f"body is a JSON {type(data).__name__}, not an object")
    account_id = data.get("for_user_id")
    if not isinstance(account_id, str) or not _DIGITS.fullmatch(account_id):
        raise MalformedPayload("for_user_id is missing or not a numeric string")
    for key in EVENT_PARSERS:
        if key in data and not isinstance(data[key], list):
            raise MalformedPayload(f"{key} is not a list")
    users = data.get("users", {})
    if not isinstance(users, dict):
        raise MalformedPayload("users is not an object")
    return Delivery(account_id, users), data


def parse_delivery(data: dict[str, Any], delivery: Delivery) -> list[NormalizedEvent]:
    """Events of every list we handle, in delivery order; other lists are ignored."""
    known = [key for key in data if key in EVENT_PARSERS]
    if not known:
        others = sorted(key.removesuffix("_events") for key in data if key.endswith("_events"))
        raise UnsupportedEvent(f"no supported events (got: {', '.join(others) or 'nothing'})")
    events, problems = [], []
    for key in known:
        for index, item in enumerate(data[key]):
            try:
                events.extend(EVENT_PARSERS[key](_object(item), delivery))
            except ItemError as exc:
                problems.append(f"{key}[{index}]: {exc}")
                log.warning("x: skipped %s[%d] for %s: %s", key, index, delivery.account_id, exc)
    if not events and problems:
        raise MalformedPayload(problems[0])
    if not events:
        raise UnsupportedEvent(f"nothing to ingest in {', '.join(known)}: retweets and DM events "
                               f"other than message_create are skipped")
    return events


# -- one parser per event list -----------------------------------------------------------

def parse_tweet_create(tweet: Item, delivery: Delivery) -> list[NormalizedEvent]:
    """A post by or naming the brand; retweets carry no words of their own and are skipped."""
    if "retweeted_status" in tweet:
        return []
    return [build_tweet_event(tweet, delivery.account_id)]


def parse_direct_message(item: Item, delivery: Delivery) -> list[NormalizedEvent]:
    """A DM in either direction; only `message_create` events carry a message."""
    if item.get("type") != "message_create":
        return []
    create = _object(item.get("message_create"), "message_create")
    sender = _id(create, "sender_id")
    recipient = _id(_object(create.get("target"), "message_create.target"), "recipient_id")
    data = _object(create.get("message_data"), "message_data")
    media = media_items([data["attachment"].get("media")] if isinstance(data.get("attachment"), dict) else [])
    is_self = sender == delivery.account_id
    return [NormalizedEvent(
        kind="echo" if is_self else "message", public=False, external_id=_id(item, "id"),
        thread_external_id=dm_thread(sender, recipient),
        author=build_author(delivery.users.get(sender), sender, delivery.account_id),
        created_at=from_millis(item.get("created_timestamp"), "created_timestamp"),
        text=strip_media_links(_str(data, "text"), media), attachments=build_attachments(media),
        raw=item, account_id=delivery.account_id,
    )]


def parse_favorite(item: Item, delivery: Delivery) -> list[NormalizedEvent]:
    """Somebody liked a post; the like has no id of its own that survives, so one is built."""
    liked = _object(item.get("favorited_status"), "favorited_status")
    target, liker = _id(liked, "id_str"), _object(item.get("user"), "user")
    author = build_author(liker, _id(liker, "id_str"), delivery.account_id)
    created = from_millis(item["timestamp_ms"], "timestamp_ms") if "timestamp_ms" in item else \
        from_v1_time(item.get("created_at"))
    millis = (created - EPOCH) // timedelta(milliseconds=1)
    return [NormalizedEvent(
        kind="reaction", public=True, external_id=f"{target}:reaction:{author.external_id}:{millis}",
        thread_external_id=v1_thread(liked), author=author, created_at=created, target_external_id=target,
        detail={"emoji": LIKE_EMOJI, "action": "react", "by": author.external_id},
        raw=item, account_id=delivery.account_id,
    )]


def parse_tweet_delete(item: Item, delivery: Delivery) -> list[NormalizedEvent]:
    """A post was deleted; it may arrive before the post itself (ingest keeps it for later)."""
    status = _object(item.get("status"), "status")
    target, user_id = _id(status, "id"), _id(status, "user_id")
    return [NormalizedEvent(
        kind="delete", public=True, external_id=f"{target}:delete", thread_external_id=target,
        author=Author(user_id, is_self=user_id == delivery.account_id),
        created_at=from_millis(item.get("timestamp_ms"), "timestamp_ms"), target_external_id=target,
        raw=item, account_id=delivery.account_id,
    )]


EVENT_PARSERS: dict[str, Callable[[Item, Delivery], list[NormalizedEvent]]] = {
    "tweet_create_events": parse_tweet_create,
    "direct_message_events": parse_direct_message,
    "favorite_events": parse_favorite,
    "tweet_delete_events": parse_tweet_delete,
}


# -- building blocks ---------------------------------------------------------------------

def build_tweet_event(tweet: Item, account_id: str) -> NormalizedEvent:
    """A v1.1 post: a reply to one of the brand's posts is a comment, anything else a mention."""
    tweet_id, user = _id(tweet, "id_str"), _object(tweet.get("user"), "user")
    author = build_author(user, _id(user, "id_str"), account_id)
    parent = _id(tweet, "in_reply_to_status_id_str", required=False)
    extended = tweet.get("extended_tweet") if isinstance(tweet.get("extended_tweet"), dict) else {}
    text = _str(extended, "full_text") or _str(tweet, "full_text") or _str(tweet, "text")
    entities = extended.get("extended_entities") or tweet.get("extended_entities") or tweet.get("entities") or {}
    media = media_items(entities.get("media", []) if isinstance(entities, dict) else [])
    to_brand = parent is not None and tweet.get("in_reply_to_user_id_str") == account_id
    return NormalizedEvent(
        kind="echo" if author.is_self else "comment" if to_brand else "mention", public=True,
        external_id=tweet_id, thread_external_id=v1_thread(tweet), in_reply_to_external_id=parent,
        author=author, created_at=from_v1_time(tweet.get("created_at")),
        text=unescape(strip_media_links(text, media)), attachments=build_attachments(media),
        detail=language_detail(tweet.get("lang")), raw=tweet, account_id=account_id,
    )


def build_author(user: Any, user_id: str, account_id: str) -> Author:
    """A v1.1 user object (or nothing, when a DM's users map lacks the sender)."""
    user = user if isinstance(user, dict) else {}
    followers = user.get("followers_count")
    return Author(external_id=user_id, name=_str(user, "name") or None, handle=_str(user, "screen_name") or None,
                  avatar_url=_str(user, "profile_image_url_https") or None,
                  followers=followers if type(followers) is int else None, is_self=user_id == account_id)


def v1_thread(tweet: Item) -> str:
    """DESIGN §4 for v1.1 posts: the post it replies to, else its own id."""
    return _id(tweet, "in_reply_to_status_id_str", required=False) or _id(tweet, "id_str")


def dm_thread(user_a: str, user_b: str) -> str:
    """`<lower id>-<higher id>`, compared as integers (never floats: ids exceed 2^53)."""
    low, high = sorted((user_a, user_b), key=int)
    return f"{low}-{high}"


def media_items(raw: Any) -> list[Item]:
    if not isinstance(raw, list):
        raise ItemError("media is not a list")
    return [m for m in raw if isinstance(m, dict)]


def build_attachments(media: list[Item]) -> list[Attachment]:
    """Photos, videos and GIFs; a video's URL is its best MP4 variant when X gives one."""
    attachments = []
    for item in media:
        kind = _MEDIA_KINDS.get(item.get("type"), "file")
        best = best_mp4(item.get("video_info"))
        if best is not None:
            attachments.append(Attachment(kind, best, "video/mp4"))
        else:
            attachments.append(Attachment(kind, _str(item, "media_url_https") or None))
    return attachments


def best_mp4(video_info: Any) -> str | None:
    """The highest-bitrate MP4 variant's URL (the other media URL of a video is a still)."""
    variants = video_info.get("variants") if isinstance(video_info, dict) else None
    mp4 = [v for v in variants if isinstance(v, dict) and v.get("content_type") == "video/mp4"
           and isinstance(v.get("url"), str)] if isinstance(variants, list) else []
    best = max(mp4, key=lambda v: v.get("bitrate") if type(v.get("bitrate")) is int else 0, default=None)
    return best["url"] if best else None


def strip_media_links(text: str, media: list[Item]) -> str:
    """X appends a t.co link to the media to the text; the attachment already stands for it."""
    for item in media:
        link = item.get("url")
        if isinstance(link, str) and link and text.rstrip().endswith(link):
            text = text.rstrip().removesuffix(link).rstrip()
    return text


def unescape(text: str) -> str:
    """Post text comes with &, < and > HTML-escaped; DESIGN §4 wants plain text."""
    return _ENTITY.sub(lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], text)


def from_v1_time(value: Any) -> datetime:
    """`Wed Oct 10 20:19:24 +0000 2018` -> aware UTC, without the locale-dependent %a/%b."""
    match = _V1_TIME.fullmatch(value) if isinstance(value, str) else None
    if not match or match.group(1) not in _MONTHS:
        raise ItemError(f"created_at {value!r:.40} is not like 'Wed Oct 10 20:19:24 +0000 2018'")
    month, day, hh, mm, ss, sign, oh, om, year = match.groups()
    try:
        local = datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
    except ValueError as exc:
        raise ItemError(f"created_at {value!r}: {exc}") from exc
    offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
    return local - offset


def from_millis(value: Any, name: str) -> datetime:
    """Epoch milliseconds (X sends them as a string, sometimes a number) -> aware UTC, exactly."""
    if type(value) is int or (isinstance(value, str) and value.isascii() and value.isdigit()):
        try:
            return EPOCH + timedelta(milliseconds=int(value))
        except OverflowError:
            pass
    raise ItemError(f"{name} is missing or not epoch milliseconds")


def _object(value: Any, name: str = "event") -> Item:
    if not isinstance(value, dict):
        raise ItemError(f"{name} is not an object")
    return value


def _id(obj: Item, key: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        raise ItemError(f"{key} is missing or not a numeric string")
    return value


def _str(obj: Item, key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""

