"""The audit log: who changed what, when, and the values before and after.

`record` takes the caller's connection, so an entry is written in the same transaction as the
change it describes: either both are kept or neither. Nothing secret goes in (no passwords,
no hashes); callers pass plain snapshots.

Moderation and assignments changed by hand are not written here twice: they are already in the
conversation event log ("moderated"; "assigned"/"unassigned" with the person who did it in
`user_id`; the router's own have none). `entries` reads them from there as the actions
"conversation.moderate" and "conversation.assign", filtered and ordered with the rest.
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
event_t = models.ConversationEvent.__table__
MAX_LIMIT = 1000
MODERATE, ASSIGN = "conversation.moderate", "conversation.assign"
#: The action each conversation event kind is shown as.
EVENT_ACTIONS = {"moderated": MODERATE, "assigned": ASSIGN, "unassigned": ASSIGN}
#: What a moderation action did to the item: (before, after).
MODERATION_STATES = {"hide": ("visible", "hidden"), "unhide": ("hidden", "visible"), "delete": ("visible", "deleted")}


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
    source: str = "audit"      # "audit" (the audit table) or "conversation" (the event log)


async def record(conn: AsyncConnection, actor_id: int | None, action: str, target: str,
                 before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """Append one entry (in the caller's transaction); returns its id."""
    values = {"at": models.utcnow(), "actor_user_id": actor_id, "action": action,
              "target": target, "before": before, "after": after}
    return (await conn.execute(sa.insert(audit_t).values(**values))).inserted_primary_key[0]


async def entries(engine: AsyncEngine, *, actor: int | None = None, action: str | None = None,
                  since: datetime | None = None, limit: int = 200) -> list[Entry]:
    """Newest first; `action` matches exactly or as a family ('user' finds 'user.role')."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = (sa.select(audit_t, user_t.c.username)
             .select_from(audit_t.outerjoin(user_t, user_t.c.id == audit_t.c.actor_user_id))
             .where(*_filters(actor, action, since))
             .order_by(audit_t.c.id.desc()).limit(limit))
    async with engine.connect() as conn:
        found = [_entry(row) for row in (await conn.execute(query)).all()]
        found += await _conversation_entries(conn, actor, action, since, limit)
    found.sort(key=lambda e: e.at, reverse=True)   # stable: same-time audit rows keep id order
    return found[:limit]


async def actions(engine: AsyncEngine) -> list[str]:
    """The distinct actions recorded so far, for the filter's choices."""
    async with engine.connect() as conn:
        found = set((await conn.scalars(sa.select(audit_t.c.action).distinct())).all())
        kinds = (await conn.scalars(sa.select(event_t.c.kind).distinct().where(
            event_t.c.kind.in_(list(EVENT_ACTIONS)), event_t.c.user_id.is_not(None)))).all()
    return sorted(found | {EVENT_ACTIONS[k] for k in kinds})


def _matches(name: str, action: str | None) -> bool:
    return not action or name == action or name.startswith(f"{action}.")


async def _conversation_entries(conn: AsyncConnection, actor: int | None, action: str | None,
                                since: datetime | None, limit: int) -> list[Entry]:
    """Moderation and hand-made assignments from the conversation event log, newest first."""
    kinds = [kind for kind, name in EVENT_ACTIONS.items() if _matches(name, action)]
    if not kinds:
        return []
    wheres = [event_t.c.kind.in_(kinds), event_t.c.user_id.is_not(None)]
    if actor is not None:
        wheres.append(event_t.c.user_id == actor)
    if since is not None:
        wheres.append(event_t.c.at >= since)
    query = (sa.select(event_t, user_t.c.username)
             .select_from(event_t.outerjoin(user_t, user_t.c.id == event_t.c.user_id))
             .where(*wheres).order_by(event_t.c.at.desc(), event_t.c.id.desc()).limit(limit))
    rows = (await conn.execute(query)).all()
    previous = await _previous_assignees(conn, [r for r in rows if r.kind != "moderated"])
    names = await _usernames(conn, {v for v in previous.values() if v is not None}
                             | {_assignee(r.detail) for r in rows if _assignee(r.detail) is not None})
    return [_event_entry(row, previous, names) for row in rows]


async def _previous_assignees(conn: AsyncConnection, rows: list[sa.Row]) -> dict[int, int | None]:
    """For each assignment event: who had the conversation before it (by the router or by hand),
    from the detail when it says, else from the conversation's earlier assignment events."""
    found: dict[int, int | None] = {}
    wanted = [r for r in rows if "previous_assignee_id" not in (r.detail or {})]
    for row in rows:
        if row not in wanted:
            found[row.id] = row.detail.get("previous_assignee_id")
    if not wanted:
        return found
    history = (await conn.execute(
        sa.select(event_t.c.id, event_t.c.conversation_id, event_t.c.detail)
        .where(event_t.c.conversation_id.in_({r.conversation_id for r in wanted}),
               event_t.c.kind.in_(("assigned", "unassigned")))
        .order_by(event_t.c.id))).all()
    for row in wanted:
        earlier = [h for h in history if h.conversation_id == row.conversation_id and h.id < row.id]
        found[row.id] = _assignee(earlier[-1].detail) if earlier else None
    return found


async def _usernames(conn: AsyncConnection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = (await conn.execute(sa.select(user_t.c.id, user_t.c.username).where(user_t.c.id.in_(ids)))).all()
    return {r.id: r.username for r in rows}


def _assignee(detail: dict[str, Any] | None) -> int | None:
    value = (detail or {}).get("assignee_id")
    return value if type(value) is int else None


def _event_entry(row: sa.Row, previous: dict[int, int | None], names: dict[int, str]) -> Entry:
    detail = row.detail or {}
    target = f"conversation {row.conversation_id}"
    if row.kind == "moderated":
        what = str(detail.get("action") or "")
        before, after = MODERATION_STATES.get(what, ("?", what or "?"))
        message = detail.get("message_id")
        target = f"{target}, message {message}" if message is not None else target
        extra = {"reason": detail["reason"]} if detail.get("reason") else {}
        return Entry(id=row.id, at=row.at, actor_id=row.user_id, actor=row.username or "system", action=MODERATE,
                     target=target, before={"item": before}, after={"item": after, **extra}, source="conversation")

    def who(user_id: int | None) -> str:
        return "nobody" if user_id is None else names.get(user_id, f"user {user_id}")

    after = {"assignee": who(_assignee(detail) if row.kind == "assigned" else None)}
    if detail.get("reason"):
        after["reason"] = str(detail["reason"])
    return Entry(id=row.id, at=row.at, actor_id=row.user_id, actor=row.username or "system", action=ASSIGN,
                 target=target, before={"assignee": who(previous.get(row.id))}, after=after, source="conversation")


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
