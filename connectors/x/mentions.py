"""Polling `GET /2/users/:id/mentions`: the v2 page -> events, and the cursor (see README.md).

X answers newest first and pages with `next_token`; one poll follows the pages until they run
out, at most MAX_PAGES of them. The cursor is the newest id seen (`since_id` next time). When a
poll stops at MAX_PAGES with older mentions still unread, the cursor records the gap as
`"<since>:<until>:<newest>"`: the next poll reads `since_id=<since>&until_id=<until>` first
and only then moves on to `<newest>`, so the cursor never skips a mention. Ids are compared
as integers of any size, never as floats (they exceed 2^53).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from socialcrm.connector import Author, NormalizedEvent, TransientError
from socialcrm.payload import language_detail

from .normalize import clean, unescape

MAX_PAGES = 10
PAGE_SIZE = 100
TWEET_FIELDS = "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,note_tweet,lang"
EXPANSIONS = "author_id,referenced_tweets.id"
USER_FIELDS = "username,name,public_metrics,profile_image_url"
_ID = re.compile(r"[0-9]{1,20}")
log = logging.getLogger(__name__)

Page = dict[str, Any]
Fetch = Callable[[dict[str, str]], Awaitable[Page]]


class UnreadablePage(ValueError):
    """A page that is not what X documents; the poller retries it instead of skipping it."""


@dataclass(frozen=True)
class Cursor:
    since: int | None = None        # newest id already committed (since_id, exclusive)
    until: int | None = None        # a gap is being filled: read only ids below this one
    newest: int | None = None       # where the cursor goes once the gap is filled

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """`None`, `"<since>"` or `"<since>:<until>:<newest>"` (since may be empty)."""
        parts = (text or "").split(":")
        if text in (None, "") or (len(parts) == 1 and _ID.fullmatch(text)):
            return cls(int(text) if text else None)
        if len(parts) == 3 and all(_ID.fullmatch(p) for p in parts[1:]) and (not parts[0] or _ID.fullmatch(parts[0])):
            return cls(int(parts[0]) if parts[0] else None, int(parts[1]), int(parts[2]))
        raise ValueError(f"not an X mentions cursor: {text!r:.60}")

    def __str__(self) -> str:
        if self.until is None:
            return str(self.since) if self.since is not None else ""
        return f"{'' if self.since is None else self.since}:{self.until}:{self.newest}"


def request_params(cursor: Cursor, token: str | None) -> dict[str, str]:
    params = {"max_results": str(PAGE_SIZE), "tweet.fields": TWEET_FIELDS,
              "expansions": EXPANSIONS, "user.fields": USER_FIELDS}
    if cursor.since is not None:
        params["since_id"] = str(cursor.since)
    if cursor.until is not None:
        params["until_id"] = str(cursor.until)
    if token:
        params["pagination_token"] = token
    return params


async def poll_mentions(fetch: Fetch, cursor_text: str | None, account_id: str) -> tuple[list[NormalizedEvent], str | None]:
    """Read every page since the cursor (at most MAX_PAGES); events oldest first, the next cursor."""
    try:
        cursor = Cursor.parse(cursor_text)
    except ValueError as exc:  # not ours (hand-edited?): start over rather than stall; ingest dedupes
        log.warning("x: %s; reading the recent mentions again", exc)
        cursor = Cursor()
    tweets: dict[int, Page] = {}
    users: dict[str, Page] = {}
    token: str | None = None
    for _ in range(MAX_PAGES):
        try:
            page_tweets, page_users, token = read_page(clean(await fetch(request_params(cursor, token))))
        except UnreadablePage as exc:
            raise TransientError(f"X sent an unreadable mentions page: {exc}") from exc
        tweets.update((int(t["id"]), t) for t in page_tweets)
        users.update(page_users)
        if not token:
            break
    events = [e for i in sorted(tweets) if (e := build_mention(tweets[i], users, account_id)) is not None]
    return events, next_cursor(cursor, sorted(tweets), more=bool(token), old=str(cursor) or None)


def next_cursor(cursor: Cursor, ids: list[int], *, more: bool, old: str | None) -> str | None:
    """Where the next poll starts; `ids` ascending. Nothing new keeps the old cursor as it was."""
    newest = max(filter(None, [cursor.newest, ids[-1] if ids else None]), default=None)
    if more and ids:
        return str(Cursor(cursor.since, ids[0], newest))
    if newest is None:
        return old
    return str(Cursor(newest))


def read_page(page: Any) -> tuple[list[Page], dict[str, Page], str | None]:
    """`data` (absent when empty), `includes.users` by id and `meta.next_token`."""
    if not isinstance(page, dict):
        raise UnreadablePage("not a JSON object")
    data, meta = page.get("data", []), page.get("meta", {})
    if not isinstance(data, list) or not all(_is_post(t) for t in data):
        raise UnreadablePage("data is not a list of posts with numeric string id and author_id")
    if "data" not in page and "meta" not in page:
        raise UnreadablePage(f"neither data nor meta ({error_summary(page)})")
    includes = page.get("includes") if isinstance(page.get("includes"), dict) else {}
    users = {u["id"]: u for u in includes.get("users", []) if isinstance(u, dict) and isinstance(u.get("id"), str)}
    token = meta.get("next_token") if isinstance(meta, dict) else None
    return data, users, token if isinstance(token, str) and token else None


def build_mention(tweet: Page, users: dict[str, Page], account_id: str) -> NormalizedEvent | None:
    """A v2 post: thread = conversation_id; a reply to the brand is a comment; retweets are skipped."""
    refs = {r.get("type"): r.get("id") for r in tweet.get("referenced_tweets", []) if isinstance(r, dict)}
    if "retweeted" in refs:
        return None
    author = build_author(users.get(tweet["author_id"]), tweet["author_id"], account_id)
    parent = refs.get("replied_to") if isinstance(refs.get("replied_to"), str) else None
    to_brand = parent is not None and tweet.get("in_reply_to_user_id") == account_id
    note = tweet.get("note_tweet") if isinstance(tweet.get("note_tweet"), dict) else {}
    text = note.get("text") if isinstance(note.get("text"), str) else tweet.get("text")
    thread = tweet.get("conversation_id") if isinstance(tweet.get("conversation_id"), str) else parent
    return NormalizedEvent(
        kind="echo" if author.is_self else "comment" if to_brand else "mention", public=True,
        external_id=tweet["id"], thread_external_id=thread or tweet["id"], in_reply_to_external_id=parent,
        author=author, created_at=iso_time(tweet.get("created_at")),
        text=unescape(text if isinstance(text, str) else ""), detail=language_detail(tweet.get("lang")),
        raw=tweet, account_id=account_id,
    )


def build_author(user: Any, user_id: str, account_id: str) -> Author:
    """A v2 user from `includes.users` (username, name, public_metrics, profile_image_url)."""
    user = user if isinstance(user, dict) else {}
    metrics = user.get("public_metrics") if isinstance(user.get("public_metrics"), dict) else {}
    followers = metrics.get("followers_count")
    return Author(external_id=user_id, name=_opt(user.get("name")), handle=_opt(user.get("username")),
                  avatar_url=_opt(user.get("profile_image_url")),
                  followers=followers if type(followers) is int else None, is_self=user_id == account_id)


def iso_time(value: Any) -> datetime:
    """v2 `created_at` (`2026-11-25T08:13:20.000Z`) -> aware UTC."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise TransientError(f"X sent a post without a readable created_at: {value!r:.40}")
    return moment


def error_summary(page: Page) -> str:
    errors = page.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else page
    return " ".join(str(first.get("detail") or first.get("title") or "no details").split())[:200]


def _is_post(tweet: Any) -> bool:
    return isinstance(tweet, dict) and all(isinstance(tweet.get(k), str) and _ID.fullmatch(tweet[k])
                                           for k in ("id", "author_id"))


def _opt(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
