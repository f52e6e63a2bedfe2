"""The user stream (`GET /api/v1/streaming/user`, server-sent events) as pure parsing functions.

Not wired to a live connection yet: the core has no long-lived connection per channel, so polling
is what ingests. These functions are what that connection will call for each event block:
`split_sse_block` reads "event: <name>" / "data: <payload>" lines (":thump" heartbeats are
comments), `parse_stream_event` turns one event into NormalizedEvents.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from socialcrm.connector import Author, MalformedPayload, NormalizedEvent

from .normalize import (
    build_edit_event,
    build_status_event,
    concerns,
    parse_notifications,
)


def split_sse_block(block: str) -> tuple[str, str] | None:
    """One SSE event block -> (event name, data); None for a heartbeat or a block without data."""
    name, data = "message", []
    for line in block.splitlines():
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return (name, "\n".join(data)) if data else None


def parse_stream_event(event_name: str, data: str, account_id: str,
                       received_at: datetime | None = None) -> list[NormalizedEvent]:
    """One user-stream event; events that are not about the brand's inbox give []."""
    if event_name == "delete":
        return [_delete_event(data, account_id, received_at or datetime.now(UTC))]
    parser = _PARSERS.get(event_name)
    return parser(_json(data, event_name), account_id) if parser else []


def _notification(payload: Any, account_id: str) -> list[NormalizedEvent]:
    return parse_notifications([payload], account_id)


def _update(payload: Any, account_id: str) -> list[NormalizedEvent]:
    """Home-timeline statuses: only the brand's own are inbox items (echoes); mentions come as notifications."""
    status = _status(payload)
    own = isinstance(status.get("account"), dict) and status["account"].get("id") == account_id
    return [build_status_event(status, account_id)] if own else []


def _status_update(payload: Any, account_id: str) -> list[NormalizedEvent]:
    status = _status(payload)
    return [build_edit_event(status, account_id)] if concerns(status, account_id) else []


_PARSERS = {"notification": _notification, "update": _update, "status.update": _status_update}


def _delete_event(data: str, account_id: str, at: datetime) -> NormalizedEvent:
    """The payload is the bare status id (some servers quote it); who deleted it is not said."""
    status_id = data.strip().strip('"')
    if not status_id or any(c.isspace() for c in status_id):
        raise MalformedPayload(f"delete event without a status id: {data!r:.40}")
    return NormalizedEvent(kind="delete", public=True, external_id=f"{status_id}:delete",
                           thread_external_id=status_id, author=Author(external_id=""), created_at=at,
                           target_external_id=status_id, raw=data, account_id=account_id)


def _json(data: str, event_name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise MalformedPayload(f"{event_name} event data is not JSON") from exc


def _status(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) or not payload["id"]:
        raise MalformedPayload("status event without a Status")
    return payload
