"""Bluesky notifications -> NormalizedEvent: pure functions, no I/O (see README.md).

`read_page` checks a listNotifications page, `fresh_items` keeps what is newer than the mark
(oldest first), `parse_items` walks them through `EVENT_PARSERS`, one `parse_<reason>` each.
Reasons not in the table (repost, follow, starterpack-joined, ...) are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from socialcrm.connector import Attachment, Author, MalformedPayload, NormalizedEvent
from socialcrm.payload import clean_payload as clean
from socialcrm.payload import field_str as _str
from socialcrm.payload import language_detail

from .marks import Mark, is_new, parse_time

log = logging.getLogger(__name__)

Item = dict[str, Any]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LIKE_EMOJI = "❤️"
# Lone surrogates cannot be encoded as UTF-8 and NUL breaks PostgreSQL text: both become U+FFFD.


@dataclass(frozen=True)
class Context:
    self_did: str      # the session's DID: its own posts are echoes
    account_id: str    # the channel's identifier setting, for routing


@dataclass(frozen=True)
class Fresh:
    at: datetime
    uri: str
    item: Item


def read_page(page: Any) -> tuple[list[Any], str | None]:
    """`{notifications[], cursor?, priority?, seenAt?}` -> (notifications, the API's older-page cursor)."""
    if not isinstance(page, dict) or not isinstance(page.get("notifications"), list):
        raise MalformedPayload("listNotifications answered without a notifications list")
    cursor = page.get("cursor")
    return page["notifications"], cursor if isinstance(cursor, str) and cursor else None


def reaches(items: list[Any], mark: Mark) -> bool:
    """True when this page holds something at or before the mark: no older page is needed."""
    return any(not is_new(f.at, f.uri, mark) for f in map(_fresh, items) if f is not None)


def fresh_items(items: list[Any], mark: Mark | None) -> list[Fresh]:
    """The notifications newer than the mark, each once, oldest first."""
    seen: set[str] = set()
    out: list[Fresh] = []
    for index, item in enumerate(items):
        fresh = _fresh(item)
        if fresh is None:
            log.warning("Bluesky notification %d skipped: no uri or no readable indexedAt", index)
        elif fresh.uri not in seen and is_new(fresh.at, fresh.uri, mark):
            seen.add(fresh.uri)
            out.append(fresh)
    out.reverse()  # the API lists newest first; the stable sort keeps that order for equal times
    return sorted(out, key=lambda f: f.at)


def _fresh(item: Any) -> Fresh | None:
    if not isinstance(item, dict) or not isinstance(item.get("uri"), str) or not item["uri"]:
        return None
    at = parse_time(item.get("indexedAt"))
    return Fresh(at, item["uri"], item) if at is not None else None


def parse_items(items: list[Fresh], ctx: Context) -> list[NormalizedEvent]:
    """Every known reason becomes events; a broken notification is skipped with a log line."""
    events: list[NormalizedEvent] = []
    for fresh in items:
        parser = EVENT_PARSERS.get(fresh.item.get("reason"))
        if parser is None:
            continue
        try:
            events.extend(parser(clean(fresh.item), ctx))
        except MalformedPayload as exc:
            log.warning("Bluesky notification %s skipped: %s", fresh.uri, exc)
    return events


# -- one parser per notification reason --------------------------------------------------

def parse_mention(item: Item, ctx: Context) -> list[NormalizedEvent]:
    """A post naming the brand: a public item, in its own thread unless it is itself a reply."""
    return [_post_event(item, ctx, "mention")]


def parse_reply(item: Item, ctx: Context) -> list[NormalizedEvent]:
    """A reply to one of the brand's posts, in the thread of its root post."""
    return [_post_event(item, ctx, "comment")]


def parse_quote(item: Item, ctx: Context) -> list[NormalizedEvent]:
    """A post quoting one of the brand's posts: treated like a mention."""
    return [_post_event(item, ctx, "mention")]


def parse_like(item: Item, ctx: Context) -> list[NormalizedEvent]:
    """A like of the brand's post; the like record's own uri identifies it."""
    target, author = _str(item, "reasonSubject", item["uri"]), build_author(item, ctx.self_did)
    return [NormalizedEvent(
        kind="reaction", public=True, external_id=item["uri"], thread_external_id=target, author=author,
        created_at=build_time(item), target_external_id=target, raw=item, account_id=ctx.account_id,
        detail={"emoji": LIKE_EMOJI, "action": "react", "by": author.external_id},
    )]


EVENT_PARSERS: dict[str, Callable[[Item, Context], list[NormalizedEvent]]] = {
    "mention": parse_mention,
    "reply": parse_reply,
    "quote": parse_quote,
    "like": parse_like,
}


# -- building blocks -----------------------------------------------------------------------

def _post_event(item: Item, ctx: Context, kind: str) -> NormalizedEvent:
    record, author = _record(item), build_author(item, ctx.self_did)
    root, parent = reply_uris(record, item["uri"])
    event = NormalizedEvent(
        kind=kind, public=True, external_id=item["uri"], thread_external_id=root or item["uri"],
        in_reply_to_external_id=parent, author=author, text=_text(record, item["uri"]),
        created_at=build_time(item), attachments=build_attachments(record.get("embed")),
        detail=language_detail(first_language(record)), raw=item, account_id=ctx.account_id,
    )
    return replace(event, kind="echo") if author.is_self else event


def first_language(record: Item) -> str | None:
    """`langs` lists up to three languages, the main one first (the composer's choice)."""
    langs = record.get("langs")
    return langs[0] if isinstance(langs, list) and langs else None


def build_author(item: Item, self_did: str) -> Author:
    """profileView `{did, handle, displayName?, avatar?}`; an empty display name is no name."""
    author, where = item.get("author"), f"{item['uri']}: author"
    if not isinstance(author, dict):
        raise MalformedPayload(f"{where} is missing or not an object")
    did = _str(author, "did", where)
    return Author(external_id=did, name=_str(author, "displayName", where, required=False) or None,
                  handle=_str(author, "handle", where, required=False),
                  avatar_url=_str(author, "avatar", where, required=False), is_self=did == self_did)


def build_time(item: Item) -> datetime:
    """record.createdAt (set by the client), unless unreadable, before 1970 or after indexedAt.

    docs.bsky.app "Timestamps": createdAt may be anything a client chose; the AppView sorts by the
    earlier of createdAt and indexedAt, and so do we.
    """
    indexed = parse_time(item.get("indexedAt"))
    if indexed is None:
        raise MalformedPayload(f"{item['uri']}: indexedAt is not an ISO datetime with a zone")
    record = item.get("record")
    created = parse_time(record.get("createdAt")) if isinstance(record, dict) else None
    return created if created is not None and EPOCH <= created <= indexed else indexed


def reply_uris(record: Item, uri: str) -> tuple[str | None, str | None]:
    """(root uri, parent uri) of `record.reply`, or (None, None) for a post that answers nothing."""
    reply = record.get("reply")
    if reply is None:
        return None, None
    if not isinstance(reply, dict):
        raise MalformedPayload(f"{uri}: record.reply is not an object")
    return _ref(reply, "root", uri)["uri"], _ref(reply, "parent", uri)["uri"]


def reply_refs(answer: Any, parent_uri: str) -> dict[str, dict[str, str]] | None:
    """getPosts `{posts: [postView]}` -> the `reply` of an answer to that post; None if not found.

    A post that is itself a reply passes its own root on; a top-level post is its own root.
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("posts"), list):
        raise MalformedPayload("getPosts answered without a posts list")
    post = next((p for p in answer["posts"] if isinstance(p, dict) and p.get("uri") == parent_uri), None)
    if post is None:
        return None
    parent = {"uri": parent_uri, "cid": _str(post, "cid", parent_uri)}
    record = post.get("record")
    reply = record.get("reply") if isinstance(record, dict) else None
    root = _ref(reply, "root", parent_uri) if isinstance(reply, dict) else parent
    return {"root": root, "parent": parent}


def _ref(reply: Item, key: str, uri: str) -> dict[str, str]:
    """A com.atproto.repo.strongRef `{uri, cid}`."""
    ref, where = reply.get(key), f"{uri}: record.reply.{key}"
    if not isinstance(ref, dict):
        raise MalformedPayload(f"{where} is missing or not an object")
    return {"uri": _str(ref, "uri", where), "cid": _str(ref, "cid", where)}


def build_attachments(embed: Any) -> list[Attachment]:
    """Images (mime type, alt text), a video, a link card; the quoted post of a quote is not one."""
    if not isinstance(embed, dict):
        return []
    kind = embed.get("$type")
    if kind == "app.bsky.embed.recordWithMedia":
        return build_attachments(embed.get("media"))
    if kind == "app.bsky.embed.images" and isinstance(embed.get("images"), list):
        return [Attachment("image", None, _mime(i.get("image")), _name(i.get("alt")))
                for i in embed["images"] if isinstance(i, dict)]
    if kind == "app.bsky.embed.video":
        return [Attachment("video", None, _mime(embed.get("video")), _name(embed.get("alt")))]
    external = embed.get("external")
    if kind == "app.bsky.embed.external" and isinstance(external, dict) and isinstance(external.get("uri"), str):
        return [Attachment("link", external["uri"], None, _name(external.get("title")))]
    return []


def _mime(blob: Any) -> str | None:
    return _name(blob.get("mimeType")) if isinstance(blob, dict) else None


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _record(item: Item) -> Item:
    record = item.get("record")
    if not isinstance(record, dict):
        raise MalformedPayload(f"{item['uri']}: record is missing or not an object")
    return record


def _text(record: Item, uri: str) -> str:
    return _str(record, "text", f"{uri}: record", required=False) or ""


