"""What the inbox pages show: read-only queries in SQLAlchemy Core, shaped for the templates.

The queue is `status = 'open'` ordered by `priority DESC, waiting_since ASC`, which the index
`ix_conversation_queue` serves directly, so the first 50 rows come out without a sort even on
a million conversations. Counts are bounded for the same reason ("99+"): past a hundred, the number no longer changes what an agent does.

Filters (socialcrm/filters.py) replace the tabs with any combination of channel, tag, status,
assignee, visibility and language; they use the same row query and order, paged.

Visibility is decided here, once: an agent sees the conversations of their teams; leads and
admins see all. A conversation the viewer may not see is reported as missing (None), so the
page answers 404 and does not reveal that it exists.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import filters, models, tags
from socialcrm.filters import Filters
from socialcrm.models import utcnow
from socialcrm.users import Viewer

conv_t = models.Conversation.__table__
channel_t = models.Channel.__table__
contact_t = models.Contact.__table__
identity_t = models.Identity.__table__
message_t = models.Message.__table__
user_t = models.User.__table__

TABS = ("mine", "unassigned", "public", "all")
TAB_LABELS = {"mine": "Mine", "unassigned": "Unassigned", "public": "Public", "all": "All open"}
PAGE_SIZE = 50
COUNT_CAP = 100
OTHER_CONVERSATIONS = 20


@dataclass(frozen=True)
class InboxRow:
    id: int
    channel_name: str
    connector: str
    public: bool
    customer_name: str
    customer_handle: str
    preview: str
    status: str
    waiting: timedelta | None          # now - waiting_since; None when nobody is waiting
    sla_left: timedelta | None         # sla_due_at - now; negative means overdue
    assignee_id: int | None
    assignee_name: str
    #: "breaching soon": the clock has used the team's at-risk share of its target, not all of it.
    at_risk: bool = False
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    count: int

    @property
    def count_label(self) -> str:
        return f"{COUNT_CAP - 1}+" if self.count >= COUNT_CAP else str(self.count)


@dataclass(frozen=True)
class InboxView:
    tab: str
    tabs: list[Tab]
    rows: list[InboxRow]
    filters: Filters | None = None     # a filtered view (tab ""), else one of the tabs
    has_next: bool = False


@dataclass(frozen=True)
class ConversationDetail:
    conversation: Any        # rows of the tables, attribute access by column name
    channel: Any
    contact: Any
    identity: Any
    assignee_name: str
    messages: list[Any]      # message columns + author_name
    others: list[Any]        # the contact's other conversations, newest first


def _visible(viewer: Viewer) -> list[Any]:
    if viewer.sees_all:
        return []
    return [conv_t.c.team_id.in_(sorted(viewer.team_ids) or [-1])]


def _tab_filter(tab: str, viewer: Viewer) -> list[Any]:
    where = [conv_t.c.status == models.OPEN, *_visible(viewer)]
    if tab == "mine":
        where.append(conv_t.c.assignee_id == viewer.id)
    elif tab == "unassigned":
        where.append(conv_t.c.assignee_id.is_(None))
    elif tab == "public":
        where.append(conv_t.c.public.is_(True))
    elif tab != "all":
        raise ValueError(f"unknown tab {tab!r}")
    return where


async def view(engine: AsyncEngine, viewer: Viewer, tab: str, now: datetime | None = None) -> InboxView:
    """One tab of the inbox with the counts of all tabs: what the inbox page shows."""
    async with engine.connect() as conn:
        return InboxView(tab, await _tabs(conn, viewer), await _queue(conn, viewer, tab, now or utcnow()))


async def filtered_view(engine: AsyncEngine, viewer: Viewer, f: Filters, now: datetime | None = None) -> InboxView:
    """A page of the conversations matching `f` (tab ""), with the tab counts for the tab bar."""
    where = [*filters.where(f, viewer.id), *_visible(viewer)]
    async with engine.connect() as conn:
        rows = await _rows(conn, where, now or utcnow(), PAGE_SIZE + 1, (f.page - 1) * PAGE_SIZE)
        return InboxView("", await _tabs(conn, viewer), rows[:PAGE_SIZE], f, len(rows) > PAGE_SIZE)


async def channel_choices(engine: AsyncEngine, viewer: Viewer) -> list[Any]:
    """Channels of the viewer's teams (id, name, connector), for the channel filter."""
    where = [] if viewer.sees_all else [channel_t.c.team_id.in_(sorted(viewer.team_ids) or [-1])]
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(channel_t.c.id, channel_t.c.name, channel_t.c.connector)
                                        .where(*where).order_by(channel_t.c.name, channel_t.c.id))).all())


async def queue(engine: AsyncEngine, viewer: Viewer, tab: str, now: datetime | None = None) -> list[InboxRow]:
    """The first PAGE_SIZE conversations of a tab, most urgent first."""
    async with engine.connect() as conn:
        return await _queue(conn, viewer, tab, now or utcnow())


async def _queue(conn: AsyncConnection, viewer: Viewer, tab: str, now: datetime) -> list[InboxRow]:
    return await _rows(conn, _tab_filter(tab, viewer), now)


async def _rows(conn: AsyncConnection, where: list[Any], now: datetime, limit: int = PAGE_SIZE,
                offset: int = 0) -> list[InboxRow]:
    """A page of rows in queue order (the order the queue indexes serve), with their tags."""
    customer = sa.func.coalesce(sa.func.nullif(identity_t.c.name, ""), contact_t.c.name)
    assignee = sa.func.coalesce(sa.func.nullif(user_t.c.display_name, ""), user_t.c.username)
    stmt = (
        sa.select(conv_t.c.id, conv_t.c.public, conv_t.c.status, conv_t.c.last_message_preview,
                  conv_t.c.waiting_since, conv_t.c.sla_due_at, conv_t.c.sla_risk_at, conv_t.c.assignee_id,
                  channel_t.c.name.label("channel_name"), channel_t.c.connector,
                  customer.label("customer_name"), identity_t.c.handle, assignee.label("assignee_name"))
        .select_from(conv_t.join(channel_t, channel_t.c.id == conv_t.c.channel_id)
                     .join(contact_t, contact_t.c.id == conv_t.c.contact_id)
                     .join(identity_t, identity_t.c.id == conv_t.c.identity_id)
                     .outerjoin(user_t, user_t.c.id == conv_t.c.assignee_id))
        .where(*where)
        .order_by(conv_t.c.priority.desc(), conv_t.c.waiting_since.asc(), conv_t.c.id.asc())
        .limit(limit).offset(offset)
    )
    rows = [_inbox_row(r, now) for r in (await conn.execute(stmt)).all()]
    labels = await tags.tags_of(conn, [r.id for r in rows])
    return [replace(r, tags=tuple(labels[r.id])) for r in rows]


def _inbox_row(r: Any, now: datetime) -> InboxRow:
    return InboxRow(
        id=r.id, channel_name=r.channel_name, connector=r.connector, public=bool(r.public),
        customer_name=r.customer_name or "", customer_handle=r.handle or "",
        preview=r.last_message_preview or "", status=r.status,
        waiting=(now - r.waiting_since) if r.waiting_since else None,
        sla_left=(r.sla_due_at - now) if r.sla_due_at else None,
        assignee_id=r.assignee_id, assignee_name=r.assignee_name or "",
        at_risk=r.sla_due_at is not None and r.sla_risk_at is not None and r.sla_risk_at <= now < r.sla_due_at,
    )


async def tabs(engine: AsyncEngine, viewer: Viewer) -> list[Tab]:
    """Every tab with its count, each counted only up to COUNT_CAP."""
    async with engine.connect() as conn:
        return await _tabs(conn, viewer)


async def _tabs(conn: AsyncConnection, viewer: Viewer) -> list[Tab]:
    """All four counts in one statement: one round trip instead of four."""
    counts = (await conn.execute(sa.select(*[_bounded_count(_tab_filter(key, viewer)).label(key)
                                              for key in TABS]))).one()
    return [Tab(key, TAB_LABELS[key], int(getattr(counts, key) or 0)) for key in TABS]


def _bounded_count(where: list[Any]) -> Any:
    capped = sa.select(conv_t.c.id).where(*where).limit(COUNT_CAP).subquery()
    return sa.select(sa.func.count()).select_from(capped).scalar_subquery()


async def conversation_detail(engine: AsyncEngine, viewer: Viewer, conversation_id: int) -> ConversationDetail | None:
    """Everything the conversation page shows, or None when missing or not visible."""
    async with engine.connect() as conn:
        conv = (await conn.execute(sa.select(conv_t).where(conv_t.c.id == conversation_id))).first()
        if conv is None or not viewer.may_see_team(conv.team_id):
            return None
        return ConversationDetail(
            conversation=conv,
            channel=(await conn.execute(sa.select(channel_t).where(channel_t.c.id == conv.channel_id))).one(),
            contact=(await conn.execute(sa.select(contact_t).where(contact_t.c.id == conv.contact_id))).one(),
            identity=(await conn.execute(sa.select(identity_t).where(identity_t.c.id == conv.identity_id))).one(),
            assignee_name=await _user_name(conn, conv.assignee_id),
            messages=await _messages(conn, conversation_id),
            others=await _other_conversations(conn, viewer, conv),
        )


async def _user_name(conn: AsyncConnection, user_id: int | None) -> str:
    if user_id is None:
        return ""
    row = (await conn.execute(sa.select(user_t.c.display_name, user_t.c.username)
                              .where(user_t.c.id == user_id))).first()
    return (row.display_name or row.username) if row else ""


async def _messages(conn: AsyncConnection, conversation_id: int) -> list[Any]:
    author_ident = identity_t.alias("author_ident")
    author_user = user_t.alias("author_user")
    author = sa.func.coalesce(sa.func.nullif(author_user.c.display_name, ""), author_user.c.username,
                              sa.func.nullif(author_ident.c.name, ""), author_ident.c.handle, "")
    stmt = (
        sa.select(message_t, author.label("author_name"), author_ident.c.handle.label("author_handle"))
        .select_from(message_t.outerjoin(author_ident, author_ident.c.id == message_t.c.author_identity_id)
                     .outerjoin(author_user, author_user.c.id == message_t.c.author_user_id))
        .where(message_t.c.conversation_id == conversation_id)
        .order_by(message_t.c.created_at, message_t.c.id)
    )
    return list((await conn.execute(stmt)).all())


async def _other_conversations(conn: AsyncConnection, viewer: Viewer, conv: Any) -> list[Any]:
    stmt = (
        sa.select(conv_t.c.id, conv_t.c.public, conv_t.c.status, conv_t.c.last_message_preview,
                  conv_t.c.last_message_at, conv_t.c.created_at, channel_t.c.name.label("channel_name"),
                  channel_t.c.connector)
        .select_from(conv_t.join(channel_t, channel_t.c.id == conv_t.c.channel_id))
        .where(conv_t.c.contact_id == conv.contact_id, conv_t.c.id != conv.id, *_visible(viewer))
        .order_by(sa.func.coalesce(conv_t.c.last_message_at, conv_t.c.created_at).desc(), conv_t.c.id.desc())
        .limit(OTHER_CONVERSATIONS)
    )
    return list((await conn.execute(stmt)).all())


async def conversation_team(engine: AsyncEngine, conversation_id: int) -> int | None:
    """The team a conversation belongs to (for access checks before an action)."""
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(conv_t.c.team_id).where(conv_t.c.id == conversation_id))


async def message_in_conversation(engine: AsyncEngine, message_id: int, conversation_id: int) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(sa.select(models.Message.__table__.c.id).where(
            models.Message.__table__.c.id == message_id,
            models.Message.__table__.c.conversation_id == conversation_id))
    return found is not None
