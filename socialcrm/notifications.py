"""Per-person notifications (today: being @mentioned in an internal note).

A row per (note, mentioned person) is the stored mention. The live event carries only the
person's id and no text: each browser stream forwards it to that person alone, whose page then
re-fetches the bell through the normal, signed-in route.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models
from socialcrm.models import utcnow
from socialcrm.text import preview

if TYPE_CHECKING:
    from socialcrm.live import Hub

notification_t = models.Notification.__table__
message_t = models.Message.__table__
user_t = models.User.__table__
COUNT_CAP = 100
LIST_LIMIT = 50


@dataclass(frozen=True)
class Item:
    id: int
    conversation_id: int
    kind: str
    actor_name: str
    snippet: str
    created_at: datetime
    read_at: datetime | None

    @property
    def unread(self) -> bool:
        return self.read_at is None


async def create_on(conn: AsyncConnection, user_ids: Iterable[int], conversation_id: int, message_id: int,
                    actor_user_id: int | None, kind: str = "mention") -> None:
    rows = [{"user_id": uid, "kind": kind, "conversation_id": conversation_id, "message_id": message_id,
             "actor_user_id": actor_user_id, "created_at": utcnow(), "read_at": None} for uid in user_ids]
    if rows:
        await conn.execute(notification_t.insert(), rows)


def announce(hub: Hub, user_ids: Iterable[int]) -> None:
    """After commit: ring each person's bell (their streams only)."""
    for uid in set(user_ids):
        hub.publish({"type": "notification", "user_id": uid})


async def unread_count(engine: AsyncEngine, user_id: int) -> int:
    """Counted only up to COUNT_CAP, through ix_notification_unread."""
    capped = (sa.select(notification_t.c.id)
              .where(notification_t.c.user_id == user_id, notification_t.c.read_at.is_(None))
              .limit(COUNT_CAP).subquery())
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(capped)) or 0)


async def recent(engine: AsyncEngine, user_id: int, *, unread_only: bool = False,
                 limit: int = LIST_LIMIT) -> list[Item]:
    """The newest notifications of one person, with who caused them and a line of the note."""
    actor = sa.func.coalesce(sa.func.nullif(user_t.c.display_name, ""), user_t.c.username, "")
    stmt = (sa.select(notification_t, actor.label("actor_name"), message_t.c.text)
            .select_from(notification_t.outerjoin(user_t, user_t.c.id == notification_t.c.actor_user_id)
                         .outerjoin(message_t, message_t.c.id == notification_t.c.message_id))
            .where(notification_t.c.user_id == user_id)
            .order_by(notification_t.c.id.desc()).limit(min(limit, LIST_LIMIT)))
    if unread_only:
        stmt = stmt.where(notification_t.c.read_at.is_(None))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [Item(r.id, r.conversation_id, r.kind, r.actor_name or "", preview(r.text or ""), r.created_at,
                 r.read_at) for r in rows]


async def mark_read(engine: AsyncEngine, user_id: int, ids: Iterable[int] | None = None,
                    now: datetime | None = None) -> int:
    """Mark some (or, with ids None, all) of the person's unread notifications read; returns how many."""
    stmt = notification_t.update().where(notification_t.c.user_id == user_id, notification_t.c.read_at.is_(None))
    if ids is not None:
        stmt = stmt.where(notification_t.c.id.in_(sorted(set(ids)) or [-1]))
    async with engine.begin() as conn:
        return (await conn.execute(stmt.values(read_at=now or utcnow()))).rowcount


async def open_one(engine: AsyncEngine, user_id: int, notification_id: int,
                   now: datetime | None = None) -> int | None:
    """Follow a notification: marks it read and returns its conversation (None if not the person's)."""
    async with engine.begin() as conn:
        conversation_id = await conn.scalar(sa.select(notification_t.c.conversation_id).where(
            notification_t.c.id == notification_id, notification_t.c.user_id == user_id))
        if conversation_id is not None:
            await conn.execute(notification_t.update().where(
                notification_t.c.id == notification_id, notification_t.c.read_at.is_(None))
                .values(read_at=now or utcnow()))
    return conversation_id
