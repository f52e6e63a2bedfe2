"""What agents do to a conversation: assign, resolve, reopen; and their presence.

Each action is one transaction that also re-runs the router where capacity changed, and
tells the live browsers what moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from socialcrm import csat, models, routing, sla, sla_policies
from socialcrm.eventlog import log_event
from socialcrm.models import utcnow

if TYPE_CHECKING:
    from socialcrm.core import Core

conversation_t = models.Conversation.__table__
user_t = models.User.__table__


class ConversationNotFound(LookupError):
    pass


async def _team_of(conn: sa.ext.asyncio.AsyncConnection, conversation_id: int) -> int:
    team = (await conn.execute(sa.select(conversation_t.c.team_id)
                               .where(conversation_t.c.id == conversation_id))).scalar()
    if team is None:
        raise ConversationNotFound(conversation_id)
    return team


def _announce(core: Core, conversation_id: int, team_id: int, assigned: list[routing.Assigned] = ()) -> None:
    core.hub.publish({"type": "conversation", "conversation_id": conversation_id, "team_id": team_id})
    for a in assigned:
        core.hub.publish({"type": "conversation", "conversation_id": a.conversation_id, "team_id": a.team_id})
    for team in {team_id} | {a.team_id for a in assigned}:
        core.hub.publish({"type": "inbox", "team_id": team})


async def assign(core: Core, conversation_id: int, assignee_id: int | None, by_user_id: int) -> None:
    """Assign by hand (or unassign with None); recorded with who did it."""
    async with core.engine.begin() as conn:
        team = await assign_on(conn, conversation_id, assignee_id, by_user_id)
        assigned = await routing.route(conn)
    _announce(core, conversation_id, team, assigned)


async def assign_on(conn: sa.ext.asyncio.AsyncConnection, conversation_id: int, assignee_id: int | None,
                    by_user_id: int) -> int:
    """The assignment on the caller's transaction (bulk actions apply many in one); returns the team."""
    team = await _team_of(conn, conversation_id)
    name = ""
    if assignee_id is not None:
        name = (await conn.execute(sa.select(sa.func.coalesce(sa.func.nullif(user_t.c.display_name, ""),
                                                              user_t.c.username))
                                   .where(user_t.c.id == assignee_id))).scalar() or ""
    reason = "assigned by hand" if assignee_id == by_user_id else (
        f"assigned by a colleague to {name}" if assignee_id else "unassigned by hand")
    await conn.execute(conversation_t.update().where(conversation_t.c.id == conversation_id)
                       .values(assignee_id=assignee_id, assignment_reason=reason if assignee_id else ""))
    await routing.record_assignment(conn, conversation_id, assignee_id, by_user_id, reason)
    return team


#: Why a conversation was resolved: a short list (stored as its label), plus optional free text.
RESOLVE_REASONS = {"answered": "Answered", "self_help": "Customer helped themselves",
                   "no_reply_needed": "No reply needed", "duplicate": "Duplicate", "other": "Other"}
RESOLVE_REASON_MAX = 300


def resolve_reason(code: str, text: str = "") -> str:
    """'Answered: sent the refund form', or '' for none; ValueError for a code not on the list."""
    code, text = (code or "").strip(), " ".join((text or "").split())
    if code and code not in RESOLVE_REASONS:
        raise ValueError(f"{code!r} is not one of the resolve reasons.")
    label = RESOLVE_REASONS.get(code, "")
    return (f"{label}: {text}" if label and text else label or text)[:RESOLVE_REASON_MAX]


async def resolve(core: Core, conversation_id: int, by_user_id: int, reason: str = "") -> None:
    """Done: the clock stops and the agent's capacity frees up for the next in line."""
    async with core.engine.begin() as conn:
        team = await resolve_on(conn, conversation_id, by_user_id, reason)
        assigned = await routing.route(conn)
    _announce(core, conversation_id, team, assigned)
    await csat.offer_survey(core, conversation_id, by_user_id)


async def resolve_on(conn: sa.ext.asyncio.AsyncConnection, conversation_id: int, by_user_id: int,
                     reason: str = "") -> int:
    """The resolution on the caller's transaction, with its reason kept; returns the team."""
    team = await _team_of(conn, conversation_id)
    public = (await conn.execute(sa.select(conversation_t.c.public)
                                 .where(conversation_t.c.id == conversation_id))).scalar()
    await conn.execute(conversation_t.update().where(conversation_t.c.id == conversation_id).values(
        status="resolved", waiting_since=None, sla_due_at=None, priority=sla.priority(bool(public), None),
        snoozed_until=None, resolve_reason=reason[:RESOLVE_REASON_MAX]))
    await log_event(conn, conversation_id, "resolved", user_id=by_user_id,
                    detail={"reason": reason} if reason else None)
    return team


async def set_pending(core: Core, conversation_id: int, by_user_id: int) -> None:
    """Waiting on the customer: out of the open queues and the SLA clock paused (the event log's
    "pending"), until the customer writes again (ingest reopens it and restarts the clock)."""
    async with core.engine.begin() as conn:
        team = await _team_of(conn, conversation_id)
        public = (await conn.execute(sa.select(conversation_t.c.public)
                                     .where(conversation_t.c.id == conversation_id))).scalar()
        await conn.execute(conversation_t.update().where(conversation_t.c.id == conversation_id).values(
            status="pending", waiting_since=None, sla_due_at=None, priority=sla.priority(bool(public), None)))
        await log_event(conn, conversation_id, "pending", user_id=by_user_id)
    _announce(core, conversation_id, team)


async def reopen(core: Core, conversation_id: int, by_user_id: int) -> None:
    """Back to open: from resolved it is a reopen (a new next-response clock); from pending it
    only ends the pause ("open" in the log)."""
    async with core.engine.begin() as conn:
        team = await _team_of(conn, conversation_id)
        was = (await conn.execute(sa.select(conversation_t.c.status)
                                  .where(conversation_t.c.id == conversation_id))).scalar()
        await conn.execute(conversation_t.update().where(conversation_t.c.id == conversation_id)
                           .values(status="open", snoozed_until=None, resolve_reason=""))
        await log_event(conn, conversation_id, "open" if was in ("pending", "snoozed") else "reopened",
                        user_id=by_user_id)
        # The paused clock goes on (from pending) or a next-response clock starts (from resolved).
        await sla_policies.refresh(conn, conversation_id, utcnow())
    _announce(core, conversation_id, team)


async def set_presence(core: Core, user_id: int, online: bool) -> None:
    """Coming online takes work from the queue; going offline hands back what still waits."""
    async with core.engine.begin() as conn:
        await conn.execute(user_t.update().where(user_t.c.id == user_id).values(
            online=online, online_since=utcnow() if online else None))
        released = [] if online else await routing.release_waiting(conn, user_id, "assignee went offline")
        assigned = await routing.route(conn)
    for conv_id, team in released:
        core.hub.publish({"type": "conversation", "conversation_id": conv_id, "team_id": team})
    for a in assigned:
        core.hub.publish({"type": "conversation", "conversation_id": a.conversation_id, "team_id": a.team_id})
    for team in {t for _, t in released} | {a.team_id for a in assigned}:
        core.hub.publish({"type": "inbox", "team_id": team})
