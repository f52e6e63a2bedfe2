"""Spam: hidden from every queue and from the router, but kept, and reversible.

Status "spam" is outside `status = 'open'`, which is all the queues and the router read. The
log gets "spam" / "not_spam" (the SLA engine does not know these kinds and ignores them); the
row's deadline is cleared while it is spam and recomputed from the log when it is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from socialcrm import models, routing, sla, sla_policies
from socialcrm.conversations import ConversationNotFound
from socialcrm.eventlog import log_event
from socialcrm.models import utcnow

if TYPE_CHECKING:
    from socialcrm.core import Core

conversation_t = models.Conversation.__table__


class SpamRejected(ValueError):
    """str(exc) says why in plain words."""


async def _current(conn: sa.ext.asyncio.AsyncConnection, conversation_id: int) -> sa.Row:
    row = (await conn.execute(sa.select(conversation_t.c.team_id, conversation_t.c.status, conversation_t.c.public)
                              .where(conversation_t.c.id == conversation_id))).first()
    if row is None:
        raise ConversationNotFound(conversation_id)
    return row


async def mark_spam(core: Core, conversation_id: int, by_user_id: int | None) -> None:
    async with core.engine.begin() as conn:
        conv = await _current(conn, conversation_id)
        if conv.status == "spam":
            raise SpamRejected("This conversation is already marked as spam.")
        await conn.execute(conversation_t.update().where(conversation_t.c.id == conversation_id).values(
            status="spam", snoozed_until=None, waiting_since=None, sla_due_at=None,
            priority=sla.priority(bool(conv.public), None)))
        await log_event(conn, conversation_id, "spam", user_id=by_user_id, detail={"was": conv.status})
        assigned = await routing.route(conn)   # an assignee's capacity may have freed up
    core.announce([conversation_id], conv.team_id, assigned)


async def not_spam(core: Core, conversation_id: int, by_user_id: int | None) -> None:
    """Back in the queue as open, with the deadline its log gives it."""
    async with core.engine.begin() as conn:
        conv = await _current(conn, conversation_id)
        if conv.status != "spam":
            raise SpamRejected("This conversation is not marked as spam.")
        await conn.execute(conversation_t.update().where(conversation_t.c.id == conversation_id)
                           .values(status="open"))
        await log_event(conn, conversation_id, "not_spam", user_id=by_user_id)
        await sla_policies.refresh(conn, conversation_id, utcnow())
        assigned = await routing.route(conn)
    core.announce([conversation_id], conv.team_id, assigned)
