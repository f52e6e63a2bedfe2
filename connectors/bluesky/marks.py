"""The poll cursor: a high-water mark of our own, because listNotifications pages run newest → older.

The API's `cursor` only leads to *older* pages, so it cannot say "what is new since last time".
Our stored cursor is instead the newest `indexedAt` seen, with the uris seen at exactly that
instant (several notifications can share a millisecond): `{"indexedAt": ..., "uris": [...]}`.
A notification is new when it was indexed after the mark, or at the mark with an unseen uri.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mark:
    at: datetime
    uris: frozenset[str]


def parse_time(value: object) -> datetime | None:
    """An atproto datetime (ISO 8601 with a zone) as aware UTC; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def render_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, milliseconds (microseconds when there are any)."""
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def parse_mark(cursor: str | None) -> Mark | None:
    """The stored cursor; an unreadable one counts as none (one page is then read again)."""
    if cursor is None:
        return None
    try:
        data = json.loads(cursor)
        at, uris = parse_time(data["indexedAt"]), data["uris"]
    except (ValueError, TypeError, KeyError):
        at, uris = None, None
    if at is None or not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        log.warning("unreadable Bluesky poll cursor ignored; starting from the newest page")
        return None
    return Mark(at, frozenset(uris))


def render_mark(mark: Mark) -> str:
    return json.dumps({"indexedAt": render_time(mark.at), "uris": sorted(mark.uris)}, separators=(",", ":"))


def is_new(at: datetime, uri: str, mark: Mark | None) -> bool:
    return mark is None or at > mark.at or (at == mark.at and uri not in mark.uris)


def advance(mark: Mark | None, seen: Iterable[tuple[datetime, str]]) -> Mark | None:
    """The mark after these new (indexedAt, uri) pairs; the old one when there are none."""
    seen = list(seen)
    if not seen:
        return mark
    newest = max(at for at, _ in seen)
    uris = {uri for at, uri in seen if at == newest}
    if mark is not None and mark.at == newest:
        uris |= mark.uris
    return Mark(newest, frozenset(uris))
