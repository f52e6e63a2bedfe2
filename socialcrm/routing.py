"""Who answers what: public first, then the earliest SLA deadline, to online agents with room.

Every assignment says why, in the words the agent sees ("public post, 12 min to SLA, you
had 2 of 5 open"). The conditional UPDATE (`assignee_id IS NULL`) makes two routers that
run at once unable to assign one conversation twice.

Capacity under concurrency: loads are read and used under one routing lock held to the end of
the transaction (a PostgreSQL advisory transaction lock; SQLite's single writer serialises by
itself), so routers in several processes never both fill an agent's last free place. While
holding it a router never waits for anything else: it claims with SKIP LOCKED, leaving a
conversation that another transaction is changing to that transaction's own routing pass.
So the lock cannot be part of a deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from socialcrm import coordination, models, sla
from socialcrm.eventlog import event_row
from socialcrm.eventlog import log_event_sync as log_event
from socialcrm.eventlog import log_events_sync as log_events
from socialcrm.models import utcnow

conversation_t = models.Conversation.__table__
user_t = models.User.__table__
member_t = models.TeamMember.__table__
channel_t = models.Channel.__table__
assignment_t = models.Assignment.__table__

#: How many waiting conversations one routing pass looks at.
BATCH = 500


@dataclass
class Agent:
    id: int
    name: str
    capacity: int
    load: int
    teams: set[int]
    online_since: datetime | None

    @property
    def has_room(self) -> bool:
        return self.load < self.capacity


@dataclass(frozen=True)
class Assigned:
    conversation_id: int
    user_id: int
    team_id: int
    reason: str


def online_agents_sync(conn: Connection) -> list[Agent]:
    """Online, active people with their current open load (conversations assigned, not resolved)."""
    rows = (conn.execute(
        sa.select(user_t.c.id, user_t.c.display_name, user_t.c.username, user_t.c.capacity, user_t.c.online_since)
        .where(user_t.c.online.is_(True), user_t.c.is_active.is_(True)))).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    # Counted per online agent through ix_conversation_assignee: cheap however big the table is.
    loads = dict((conn.execute(
        sa.select(conversation_t.c.assignee_id, sa.func.count())
        .where(conversation_t.c.assignee_id.in_(ids), conversation_t.c.status.in_(("open", "pending")))
        .group_by(conversation_t.c.assignee_id))).all())
    teams = _teams_of(conn, ids)
    return [Agent(r.id, r.display_name or r.username, r.capacity, loads.get(r.id, 0), teams.get(r.id, set()),
                  r.online_since) for r in rows]


def _teams_of(conn: Connection, user_ids: list[int]) -> dict[int, set[int]]:
    if not user_ids:
        return {}
    out: dict[int, set[int]] = {}
    for uid, tid in (conn.execute(sa.select(member_t.c.user_id, member_t.c.team_id)
                                        .where(member_t.c.user_id.in_(user_ids)))).all():
        out.setdefault(uid, set()).add(tid)
    return out


def pick_agent(agents: list[Agent], team_id: int) -> Agent | None:
    """Least loaded first; among equals, the one online longest (fair rotation)."""
    candidates = [a for a in agents if team_id in a.teams and a.has_room]
    if not candidates:
        return None
    far_past = datetime.min.replace(tzinfo=utcnow().tzinfo)
    return min(candidates, key=lambda a: (a.load, a.online_since or far_past, a.id))


def explain(public: bool, due: datetime | None, agent: Agent, now: datetime) -> str:
    what = "public post" if public else "private message"
    return f"{what}, {sla.describe_deadline(due, now)}, you had {agent.load} of {agent.capacity} open"


def route_sync(conn: Connection, now: datetime | None = None) -> list[Assigned]:
    """Assign waiting, unassigned conversations in priority order while agents have room."""
    now = now or utcnow()
    coordination.xact_lock_sync(conn, "routing", 0)
    agents = online_agents_sync(conn)
    if not any(a.has_room for a in agents):
        return []
    rows = (conn.execute(
        sa.select(conversation_t.c.id, conversation_t.c.team_id, conversation_t.c.public,
                  conversation_t.c.sla_due_at)
        .join(channel_t, channel_t.c.id == conversation_t.c.channel_id)
        .where(conversation_t.c.status == models.OPEN, conversation_t.c.assignee_id.is_(None),
               channel_t.c.auto_assign.is_(True))
        .order_by(conversation_t.c.priority.desc(), conversation_t.c.waiting_since.asc(), conversation_t.c.id.asc())
        .limit(BATCH))).all()
    plan: list[Assigned] = []
    for row in rows:
        agent = pick_agent(agents, row.team_id)
        if agent is None:
            continue
        plan.append(Assigned(row.id, agent.id, row.team_id, explain(row.public, row.sla_due_at, agent, now)))
        agent.load += 1
        if not any(a.has_room for a in agents):
            break
    return _claim_all(conn, plan, now)


def _claim_all(conn: Connection, plan: list[Assigned], now: datetime) -> list[Assigned]:
    """Claim every planned conversation in one UPDATE ... RETURNING: a conversation another router
    took meanwhile is simply not returned, so nothing is ever assigned twice."""
    if not plan:
        return []
    by_id = {a.conversation_id: a for a in plan}
    c = conversation_t.c
    free = (sa.select(c.id).where(c.id.in_(list(by_id)), c.assignee_id.is_(None))
            .with_for_update(skip_locked=True))     # never wait while holding the routing lock
    stmt = conversation_t.update().where(c.id.in_(free.scalar_subquery()), c.assignee_id.is_(None)).values(
        assignee_id=sa.case({i: a.user_id for i, a in by_id.items()}, value=c.id),
        assignment_reason=sa.case({i: a.reason for i, a in by_id.items()}, value=c.id),
    ).returning(c.id)
    claimed = set((conn.execute(stmt)).scalars())
    made = [a for a in plan if a.conversation_id in claimed]
    if not made:
        return []
    conn.execute(assignment_t.insert(), [
        {"conversation_id": a.conversation_id, "user_id": a.user_id, "by_user_id": None, "reason": a.reason, "at": now}
        for a in made])
    log_events(conn, [event_row(a.conversation_id, "assigned", at=now,
                                      detail={"assignee_id": a.user_id, "reason": a.reason}) for a in made])
    return made


def record_assignment_sync(conn: Connection, conv_id: int, user_id: int | None, by_user_id: int | None,
                            reason: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    conn.execute(assignment_t.insert().values(conversation_id=conv_id, user_id=user_id,
                                                    by_user_id=by_user_id, reason=reason, at=now))
    kind = "assigned" if user_id is not None else "unassigned"
    log_event(conn, conv_id, kind, at=now, user_id=by_user_id,
                    detail={"assignee_id": user_id, "reason": reason})


def release_waiting_sync(conn: Connection, user_id: int, why: str) -> list[tuple[int, int]]:
    """Unassign a person's conversations that still wait for an answer; returns (id, team_id)."""
    rows = (conn.execute(sa.select(conversation_t.c.id, conversation_t.c.team_id).where(
        conversation_t.c.assignee_id == user_id, conversation_t.c.status == "open",
        conversation_t.c.waiting_since.is_not(None)))).all()
    for row in rows:
        conn.execute(conversation_t.update().where(conversation_t.c.id == row.id)
                           .values(assignee_id=None, assignment_reason=""))
        record_assignment_sync(conn, row.id, None, None, why)
    return [(r.id, r.team_id) for r in rows]


# -- async entry points (the same code, run on an async connection) ------------------------

async def online_agents(conn: AsyncConnection) -> list[Agent]:
    return await conn.run_sync(online_agents_sync)


async def route(conn: AsyncConnection, now: datetime | None = None) -> list[Assigned]:
    return await conn.run_sync(route_sync, now)


async def record_assignment(conn: AsyncConnection, conv_id: int, user_id: int | None, by_user_id: int | None,
                            reason: str, now: datetime | None = None) -> None:
    await conn.run_sync(record_assignment_sync, conv_id, user_id, by_user_id, reason, now)


async def release_waiting(conn: AsyncConnection, user_id: int, why: str) -> list[tuple[int, int]]:
    return await conn.run_sync(release_waiting_sync, user_id, why)
