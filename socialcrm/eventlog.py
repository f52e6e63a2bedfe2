"""The append-only conversation event log every metric is computed from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from socialcrm import models
from socialcrm.models import utcnow

event_t = models.ConversationEvent.__table__


def event_row(conversation_id: int, kind: str, *, at: datetime | None = None, user_id: int | None = None,
              detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "kind": kind, "at": at or utcnow(), "user_id": user_id,
            "detail": detail or {}}


async def log_event(conn: AsyncConnection, conversation_id: int, kind: str, *, at: datetime | None = None,
                    user_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
    await conn.execute(event_t.insert().values(**event_row(conversation_id, kind, at=at, user_id=user_id,
                                                             detail=detail)))


async def log_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Many at once (one executemany): the ingest hot path."""
    if rows:
        await conn.execute(event_t.insert(), rows)


def log_event_sync(conn: Connection, conversation_id: int, kind: str, *, at: datetime | None = None,
                   user_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
    conn.execute(event_t.insert().values(**event_row(conversation_id, kind, at=at, user_id=user_id, detail=detail)))


def log_events_sync(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(event_t.insert(), rows)
