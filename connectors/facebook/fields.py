"""The building blocks every Facebook parser shares: ids, people, epoch times (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from socialcrm.connector import Author, MalformedPayload

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Item = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """What every item of one `entry` shares: the Page it was delivered for, and when."""

    page_id: str
    time: int       # `entry.time` as sent: milliseconds for Messenger, seconds for the feed


def time_ms(value: Any, where: str) -> datetime:
    """Epoch milliseconds (Messenger `timestamp`, `watermark`) -> aware UTC, exactly."""
    return _epoch(value, where, "milliseconds")


def time_s(value: Any, where: str) -> datetime:
    """Epoch seconds (feed `created_time`, feed `entry.time`) -> aware UTC."""
    return _epoch(value, where, "seconds")


def _epoch(value: Any, where: str, unit: str) -> datetime:
    if type(value) is not int or value < 0:
        raise MalformedPayload(f"{where} is missing or not integer epoch {unit}")
    try:
        return EPOCH + timedelta(**{unit: value})
    except OverflowError as exc:
        raise MalformedPayload(f"{where} {value} is out of range") from exc


def string(obj: Any, key: str, where: str, *, required: bool = True) -> str | None:
    """A string field (every Meta id is one); a wrong type is malformed, a missing optional one None."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise MalformedPayload(f"{where}.{key} is {'missing or ' if required else ''}not a string")
    return value


def person(obj: Any, where: str, page_id: str) -> Author:
    """`{"id", "name"?}` -> Author; the Page itself is the brand (`is_self`)."""
    if not isinstance(obj, dict):
        raise MalformedPayload(f"{where} is missing or not an object")
    external_id = string(obj, "id", where)
    return Author(external_id, name=string(obj, "name", where, required=False), is_self=external_id == page_id)
