"""The audit log: who changed what, when, and the values before and after.

`record` takes the caller's connection, so an entry is written in the same transaction as the
change it describes: either both are kept or neither. Nothing secret goes in (no passwords,
no hashes); callers pass plain snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models

audit_t = models.AuditEntry.__table__
user_t = models.User.__table__
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Entry:
    """One line of the audit page."""

    id: int
    at: datetime
    actor_id: int | None
    actor: str                 # the actor's username, or "system"
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


async def record(conn: AsyncConnection, actor_id: int | None, action: str, target: str,
                 before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """Append one entry (in the caller's transaction); returns its id."""
    values = {"at": models.utcnow(), "actor_user_id": actor_id, "action": action,
              "target": target, "before": before, "after": after}
    return (await conn.execute(sa.insert(audit_t).values(**values))).inserted_primary_key[0]


async def entries(engine: AsyncEngine, *, actor: int | None = None, action: str | None = None,
                  since: datetime | None = None, limit: int = 200) -> list[Entry]:
    """Newest first; `action` matches exactly or as a family ('user' finds 'user.role')."""
    query = (sa.select(audit_t, user_t.c.username)
             .select_from(audit_t.outerjoin(user_t, user_t.c.id == audit_t.c.actor_user_id))
             .where(*_filters(actor, action, since))
             .order_by(audit_t.c.id.desc()).limit(max(1, min(limit, MAX_LIMIT))))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_entry(row) for row in rows]


async def actions(engine: AsyncEngine) -> list[str]:
    """The distinct actions recorded so far, for the filter's choices."""
    async with engine.connect() as conn:
        return list((await conn.scalars(sa.select(audit_t.c.action).distinct().order_by(audit_t.c.action))).all())


def _filters(actor: int | None, action: str | None, since: datetime | None) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    if actor is not None:
        found.append(audit_t.c.actor_user_id == actor)
    if action:
        found.append(sa.or_(audit_t.c.action == action,
                            audit_t.c.action.startswith(f"{action}.", autoescape=True)))
    if since is not None:
        found.append(audit_t.c.at >= since)
    return found


def _entry(row: sa.Row) -> Entry:
    return Entry(id=row.id, at=row.at, actor_id=row.actor_user_id, actor=row.username or "system",
                 action=row.action, target=row.target, before=row.before, after=row.after)
