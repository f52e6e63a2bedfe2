"""The reconciliation poll: what webhooks should have delivered, read back through the Graph API.

Meta sometimes never delivers a webhook. The poll lists the Page's Messenger conversations
updated since the cursor and their recent messages, and the recent posts of the Page feed with
their recent comments (and visitors' posts). Every item keeps the id its webhook carries (`mid`,
comment id, post id), so whatever the webhook already brought is a no-op for the core.
Graph lists are newest first and paged with `paging.cursors.after` while `paging.next` exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connectors.meta_common import GraphAPI
from socialcrm.connector import Attachment, Author, NormalizedEvent, TransientError

from .api import PLATFORM, node

log = logging.getLogger(__name__)

CONVERSATIONS_PATH = "{page_id}/conversations"
MESSAGES_PATH = "{conversation_id}/messages"
FEED_PATH = "{page_id}/feed"
POST_COMMENTS_PATH = "{post_id}/comments"
CONVERSATION_FIELDS = "id,updated_time"
MESSAGE_FIELDS = "id,created_time,from,to,message,sticker,attachments{mime_type,name,image_data,video_data,file_url}"
POST_FIELDS = "id,created_time,updated_time,from,message"
COMMENT_FIELDS = "id,created_time,from,message,parent{id},attachment"
PAGE_SIZE = 25
#: At most this many pages per list in one poll, so a poll's cost is bounded.
MAX_PAGES = 4
#: Comments are looked for under this many pages of the newest posts (feed order is creation time).
POST_PAGES = 2
#: Graph's date format, e.g. "2026-11-24T09:15:02+0000".
GRAPH_TIME = "%Y-%m-%dT%H:%M:%S%z"
ATTACHMENT_KINDS = {"photo": "image", "sticker": "sticker", "video_inline": "video", "video": "video",
                    "animated_image_video": "video", "animated_image_share": "image", "share": "link"}

Item = dict[str, Any]


async def reconcile(graph: GraphAPI, page_id: str, since: datetime) -> list[NormalizedEvent]:
    """Messages and comments created at or after `since`, oldest first."""
    events = await messenger_events(graph, page_id, since) + await feed_events(graph, page_id, since)
    return sorted(events, key=lambda event: event.created_at)


async def messenger_events(graph: GraphAPI, page_id: str, since: datetime) -> list[NormalizedEvent]:
    conversations = await collect(graph, CONVERSATIONS_PATH.format(page_id=node(page_id)),
                                  {"platform": "messenger", "fields": CONVERSATION_FIELDS},
                                  lambda c: is_recent(c, "updated_time", since))
    events: list[NormalizedEvent] = []
    for conversation in conversations:
        messages = await collect(graph, MESSAGES_PATH.format(conversation_id=node(str(conversation["id"]))),
                                 {"fields": MESSAGE_FIELDS}, lambda m: is_recent(m, "created_time", since))
        events += _each(messages, lambda m: message_event(m, page_id))
    return events


async def feed_events(graph: GraphAPI, page_id: str, since: datetime) -> list[NormalizedEvent]:
    posts = await collect(graph, FEED_PATH.format(page_id=node(page_id)), {"fields": POST_FIELDS},
                          lambda _: True, pages=POST_PAGES)
    events: list[NormalizedEvent] = []
    for post in (p for p in posts if is_recent(p, "updated_time", since)):
        if is_recent(post, "created_time", since):
            events += _each([post], lambda p: visitor_post_event(p, page_id))
        comments = await collect(graph, POST_COMMENTS_PATH.format(post_id=node(str(post["id"]))),
                                 {"fields": COMMENT_FIELDS, "filter": "stream", "order": "reverse_chronological"},
                                 lambda c: is_recent(c, "created_time", since))
        events += _each(comments, lambda c, post_id=str(post["id"]): comment_event(c, post_id, page_id))
    return events


async def collect(graph: GraphAPI, path: str, params: dict[str, str], recent: Callable[[Item], bool], *,
                  pages: int = MAX_PAGES) -> list[Item]:
    """Items of a newest-first list until one is not recent, the list ends, or `pages` are read."""
    found: list[Item] = []
    after: str | None = None
    for _ in range(pages):
        page = await graph.get(path, **params, limit=str(PAGE_SIZE), **({"after": after} if after else {}))
        for item in _data(page, path):
            if not recent(item):
                return found
            found.append(item)
        after = next_cursor(page)
        if after is None:
            break
    return found


def next_cursor(page: Item) -> str | None:
    """`paging.cursors.after`, if `paging.next` says there is more."""
    paging = page.get("paging") if isinstance(page.get("paging"), dict) else {}
    cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
    after = cursors.get("after")
    return after if paging.get("next") and isinstance(after, str) and after else None


def is_recent(item: Item, key: str, since: datetime) -> bool:
    moment = graph_time(item.get(key))
    return moment is not None and moment >= since


def graph_time(value: Any) -> datetime | None:
    try:
        return datetime.strptime(value, GRAPH_TIME).astimezone(UTC) if isinstance(value, str) else None
    except ValueError:
        return None


# -- Graph objects -> events -------------------------------------------------------------

def message_event(message: Item, page_id: str) -> NormalizedEvent:
    """A Conversations API message; from the Page it is an echo in the customer's thread."""
    sender = _person(message.get("from"), page_id)
    if sender.is_self:
        recipients = (message.get("to") or {}).get("data") or [{}]
        thread = _person(recipients[0], page_id).external_id
    else:
        thread = sender.external_id
    return NormalizedEvent(
        kind="echo" if sender.is_self else "message", public=False, external_id=_id(message),
        thread_external_id=thread, author=sender, created_at=_time(message), text=_text(message, "message"),
        attachments=message_attachments(message), raw=message, account_id=page_id)


def comment_event(comment: Item, post_id: str, page_id: str) -> NormalizedEvent:
    author = _person(comment.get("from"), page_id)
    parent = comment.get("parent")
    return NormalizedEvent(
        kind="echo" if author.is_self else "comment", public=True, external_id=_id(comment),
        thread_external_id=post_id, author=author, created_at=_time(comment), text=_text(comment, "message"),
        in_reply_to_external_id=parent["id"] if isinstance(parent, dict) and isinstance(parent.get("id"), str)
        else post_id, attachments=comment_attachments(comment), raw=comment, account_id=page_id)


def visitor_post_event(post: Item, page_id: str) -> list[NormalizedEvent]:
    """A visitor's post on the Page (the Page's own posts are publishing, not conversations)."""
    author = _person(post.get("from"), page_id)
    if author.is_self:
        return []
    return [NormalizedEvent(kind="mention", public=True, external_id=_id(post), thread_external_id=_id(post),
                            author=author, created_at=_time(post), text=_text(post, "message"), raw=post,
                            account_id=page_id)]


def message_attachments(message: Item) -> list[Attachment]:
    found = [Attachment("sticker", message["sticker"])] if isinstance(message.get("sticker"), str) else []
    for data in (message.get("attachments") or {}).get("data") or []:
        image, video = data.get("image_data") or {}, data.get("video_data") or {}
        if image.get("url"):
            found.append(Attachment("image", image["url"], data.get("mime_type"), data.get("name")))
        elif video.get("url"):
            found.append(Attachment("video", video["url"], data.get("mime_type"), data.get("name")))
        elif data.get("file_url"):
            found.append(Attachment("file", data["file_url"], data.get("mime_type"), data.get("name")))
    return found


def comment_attachments(comment: Item) -> list[Attachment]:
    attachment = comment.get("attachment")
    if not isinstance(attachment, dict):
        return []
    kind = ATTACHMENT_KINDS.get(str(attachment.get("type")), "link")
    image = ((attachment.get("media") or {}).get("image") or {}).get("src")
    return [Attachment(kind, image if kind in ("image", "sticker") and image else attachment.get("url"))]


def _each(items: list[Item], convert: Callable[[Item], Any]) -> list[NormalizedEvent]:
    """Convert every item; one the API sent without what we need is skipped with a log line."""
    events: list[NormalizedEvent] = []
    for item in items:
        try:
            converted = convert(item)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            log.warning("facebook poll: skipped %s: %s", item.get("id"), type(exc).__name__)
            continue
        events += converted if isinstance(converted, list) else [converted]
    return events


def _data(page: Any, path: str) -> list[Item]:
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise TransientError(f"{PLATFORM} answered {path} without a data list")
    return [item for item in page["data"] if isinstance(item, dict) and isinstance(item.get("id"), str)]


def _person(value: Any, page_id: str) -> Author:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise TypeError("no author")
    name = value.get("name") if isinstance(value.get("name"), str) else None
    return Author(value["id"], name=name, is_self=value["id"] == page_id)


def _id(item: Item) -> str:
    return item["id"]


def _time(item: Item) -> datetime:
    moment = graph_time(item.get("created_time"))
    if moment is None:
        raise ValueError("no created_time")
    return moment


def _text(item: Item, key: str) -> str:
    value = item.get(key)
    return value if isinstance(value, str) else ""
