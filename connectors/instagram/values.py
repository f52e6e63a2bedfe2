"""Small readers shared by webhooks, polls and fetches: typed fields, times, storable text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from socialcrm.connector import MalformedPayload
from socialcrm.payload import field_str as string
from socialcrm.text import clean_text, clean_tree

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Comment `entry.time` is epoch seconds, DM times are milliseconds. A seconds value this large
#: would be after the year 5000, so a value past it can only be milliseconds (see README.md).
MILLIS_FROM = 10**11


def build_millis(value: Any) -> datetime:
    """Epoch milliseconds (DM `timestamp`) -> aware UTC, exactly."""
    if type(value) is not int:  # bool is an int too, and never a timestamp
        raise MalformedPayload("timestamp is missing or not integer milliseconds")
    return _after_epoch(timedelta(milliseconds=value), value)


def build_seconds(value: int) -> datetime:
    """Epoch seconds (comment `entry.time`); milliseconds are recognised by their size."""
    if value >= MILLIS_FROM:
        return _after_epoch(timedelta(milliseconds=value), value)
    return _after_epoch(timedelta(seconds=value), value)


def build_time(value: str) -> datetime:
    """Graph's ISO 8601 (`2026-11-24T10:02:13+0000`) -> aware UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedPayload(f"timestamp {value[:40]!r} is not ISO 8601") from exc
    if moment.tzinfo is None:
        raise MalformedPayload(f"timestamp {value[:40]!r} has no time zone")
    return moment.astimezone(UTC)


def _after_epoch(delta_of: Any, value: int) -> datetime:
    try:
        return EPOCH + delta_of
    except OverflowError as exc:
        raise MalformedPayload(f"timestamp {value} is out of range") from exc


def obj(item: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = item.get(key)
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where} is missing or not an object")
    return value



def text_of(item: dict[str, Any], where: str) -> str:
    return string(item, "text", where, required=False) or ""


def clean(value: Any) -> Any:
    """Every string of a parsed JSON tree made storable (lone surrogates, NUL)."""
    return clean_tree(value, clean_text)


