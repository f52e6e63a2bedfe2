"""Graph API answers -> NormalizedEvent: the poll's comment pages and the mention fetch. Pure."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from socialcrm.connector import (
    Author,
    MalformedPayload,
    NormalizedEvent,
    TransientError,
)

from .values import build_time, clean, obj, string, text_of

log = logging.getLogger(__name__)


def media_ids(page: Any) -> list[str]:
    """`GET /{ig-user-id}/media`: `{"data": [{"id"}, ...]}`."""
    return [string(m, "id", "media") for m in _data(page, "media list")]  # MalformedPayload: see poll


def parse_comment_page(page: Any, media_id: str, account_id: str) -> list[NormalizedEvent]:
    """`GET /{media-id}/comments` with replies expanded: the same events a webhook would give.

    A comment that cannot be read is logged and skipped; the rest of the page still counts."""
    events = []
    for comment in _flatten(clean(_data(page, "comment page"))):
        try:
            events.append(build_polled_comment(comment, media_id, account_id))
        except MalformedPayload as exc:
            log.warning("instagram: poll: skipped a comment on media %s: %s", media_id, exc)
    return events


def build_polled_comment(comment: Any, media_id: str, account_id: str) -> NormalizedEvent:
    if not isinstance(comment, dict):
        raise MalformedPayload("comment is not an object")
    sender = obj(comment, "from", "comment.from")
    author_id = string(sender, "id", "comment.from")
    author = Author(author_id, handle=string(sender, "username", "comment.from", required=False),
                    is_self=author_id == account_id)
    parent = string(comment, "parent_id", "comment", required=False)
    return NormalizedEvent(
        kind="echo" if author.is_self else "comment", public=True, external_id=string(comment, "id", "comment"),
        thread_external_id=media_id, author=author, created_at=build_time(string(comment, "timestamp", "comment")),
        text=text_of(comment, "comment"), in_reply_to_external_id=parent or media_id, raw=comment,
        account_id=account_id,
    )


def newer_than(events: list[NormalizedEvent], cursor: datetime | None) -> list[NormalizedEvent]:
    fresh = [e for e in events if cursor is None or e.created_at > cursor]
    return sorted(fresh, key=lambda e: (e.created_at, e.external_id))


def fill_mention(event: NormalizedEvent, answer: Any) -> NormalizedEvent:
    """`GET /{ig-user-id}?fields=mentioned_comment.comment_id(<id>){...}` -> the mention, complete.

    Only a username is documented for the author of someone else's comment: it becomes the
    author's id as `@username` (see README.md)."""
    comment = answer.get("mentioned_comment") if isinstance(answer, dict) else None
    try:
        if not isinstance(comment, dict):
            raise MalformedPayload("the answer has no mentioned_comment")
        comment = clean(comment)
        username = string(comment, "username", "mentioned_comment", required=False)
        author = Author(f"@{username}", handle=username) if username else event.author
        return replace(event, text=text_of(comment, "mentioned_comment"), author=author,
                       created_at=build_time(string(comment, "timestamp", "mentioned_comment")),
                       detail={}, raw={"webhook": event.raw, "mentioned_comment": comment})
    except MalformedPayload as exc:  # a retry would get the same answer
        log.warning("instagram: mention %s: unreadable answer: %s", event.external_id, exc)
        return mention_not_fetched(event, f"Instagram's answer could not be read: {exc}")


def mention_not_fetched(event: NormalizedEvent, reason: str) -> NormalizedEvent:
    """Meta will never give this comment (deleted, comments turned off): keep the mention, say why."""
    return replace(event, detail={"fetch_error": reason})


def _data(page: Any, what: str) -> list[Any]:
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise TransientError(f"Instagram sent a {what} without a data list")
    return page["data"]


def _flatten(comments: list[Any]) -> list[Any]:
    """Top-level comments followed by their `replies.data`."""
    out = []
    for comment in comments:
        out.append(comment)
        replies = comment.get("replies") if isinstance(comment, dict) else None
        if isinstance(replies, dict) and isinstance(replies.get("data"), list):
            out.extend(replies["data"])
    return out
