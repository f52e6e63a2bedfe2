"""Bulk actions from the inbox: assign, tag or resolve several conversations at once.

All changes go into one transaction, through the same functions as the single actions, so
each conversation's event log reads exactly as if it had been done by hand. Conversations the
action does not apply to are skipped with a reason instead of failing the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import conversations, csat, models, routing, tags
from socialcrm.users import SEE_ALL_ROLES, Viewer

if TYPE_CHECKING:
    from socialcrm.core import Core

conversation_t = models.Conversation.__table__
tag_t = models.ConversationTag.__table__
user_t = models.User.__table__
member_t = models.TeamMember.__table__
ACTIONS = ("assign", "tag", "resolve")
MAX_SELECTED = 100
ASSIGNABLE_LIMIT = 200


class BulkRejected(ValueError):
    """The request as a whole makes no sense; str(exc) says why in plain words."""


@dataclass
class BulkResult:
    changed: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Assignee:
    id: int
    name: str
    role: str
    team_ids: frozenset[int]

    def may_take(self, team_id: int) -> bool:
        return self.role in SEE_ALL_ROLES or team_id in self.team_ids


async def assignable(engine: AsyncEngine, viewer: Viewer) -> list[Assignee]:
    """Active people the viewer may hand work to: their teams' members (leads: everyone)."""
    name = sa.func.coalesce(sa.func.nullif(user_t.c.display_name, ""), user_t.c.username)
    stmt = (sa.select(user_t.c.id, name.label("name"), user_t.c.role, member_t.c.team_id)
            .select_from(user_t.outerjoin(member_t, member_t.c.user_id == user_t.c.id))
            .where(user_t.c.is_active.is_(True)).order_by(name, user_t.c.id).limit(ASSIGNABLE_LIMIT * 4))
    if not viewer.sees_all:
        mine = sa.select(member_t.c.user_id).where(member_t.c.team_id.in_(sorted(viewer.team_ids) or [-1]))
        stmt = stmt.where(user_t.c.id.in_(mine))
    people: dict[int, dict[str, Any]] = {}
    async with engine.connect() as conn:
        for r in await conn.execute(stmt):
            p = people.setdefault(r.id, {"name": r.name, "role": r.role, "teams": set()})
            if r.team_id is not None:
                p["teams"].add(r.team_id)
    return [Assignee(i, p["name"], p["role"], frozenset(p["teams"])) for i, p in people.items()][:ASSIGNABLE_LIMIT]


def _check(ids: list[int], action: str) -> list[int]:
    if action not in ACTIONS:
        raise BulkRejected("Choose assign, tag or resolve.")
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise BulkRejected("Select at least one conversation first.")
    if len(ids) > MAX_SELECTED:
        raise BulkRejected(f"Select at most {MAX_SELECTED} conversations at a time.")
    return ids


async def apply(core: Core, viewer: Viewer, ids: list[int], action: str, *, assignee: Assignee | None = None,
                tag: str = "", reason: str = "") -> BulkResult:
    """One transaction for the whole selection; surveys and live updates follow the commit."""
    ids = _check(ids, action)
    if action == "tag":
        tag = tags.normalise(tag)
    result = BulkResult()
    async with core.engine.begin() as conn:
        rows = {r.id: r for r in await conn.execute(sa.select(
            conversation_t.c.id, conversation_t.c.team_id, conversation_t.c.status, conversation_t.c.assignee_id)
            .where(conversation_t.c.id.in_(ids)))}
        tagged = await _already_tagged(conn, ids, tag) if action == "tag" else set()
        for cid in ids:
            row = rows.get(cid)
            why = _skip_reason(row, viewer, action, assignee, cid in tagged)
            if why:
                result.skipped.append((cid, why))
                continue
            await _apply_one(conn, action, cid, viewer, assignee, tag, reason)
            result.changed.append(cid)
        assigned = await routing.route(conn) if result.changed else []
    _announce(core, rows, result.changed, assigned)
    if action == "resolve":
        for cid in result.changed:
            await csat.offer_survey(core, cid, viewer.id)
    return result


async def _already_tagged(conn: AsyncConnection, ids: list[int], tag: str) -> set[int]:
    return set((await conn.execute(sa.select(tag_t.c.conversation_id)
                                   .where(tag_t.c.tag == tag, tag_t.c.conversation_id.in_(ids)))).scalars())


def _skip_reason(row: Any, viewer: Viewer, action: str, assignee: Assignee | None, tagged: bool) -> str:
    if row is None or not viewer.may_see_team(row.team_id):
        return "not found"
    if action == "resolve" and row.status in ("resolved", "spam"):
        return f"already {row.status}" if row.status == "resolved" else "marked as spam"
    if action == "assign":
        if row.status == "spam":
            return "marked as spam"
        if assignee is not None and not assignee.may_take(row.team_id):
            return f"{assignee.name} is not in this conversation's team"
        if row.assignee_id == (assignee.id if assignee else None):
            return "already assigned to them" if assignee else "already unassigned"
    if action == "tag" and tagged:
        return "already tagged"
    return ""


async def _apply_one(conn: AsyncConnection, action: str, cid: int, viewer: Viewer, assignee: Assignee | None,
                     tag: str, reason: str) -> None:
    if action == "assign":
        await conversations.assign_on(conn, cid, assignee.id if assignee else None, viewer.id)
    elif action == "tag":
        await tags.add_on(conn, cid, tag, viewer.id)
    else:
        await conversations.resolve_on(conn, cid, viewer.id, reason)


def _announce(core: Core, rows: dict[int, Any], changed: list[int], assigned: list[routing.Assigned]) -> None:
    by_team: dict[int, list[int]] = {}
    for cid in changed:
        by_team.setdefault(rows[cid].team_id, []).append(cid)
    for i, (team, cids) in enumerate(sorted(by_team.items())):
        core.announce(cids, team, assigned if i == 0 else [])
