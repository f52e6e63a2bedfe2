"""One tracked thread: a public comment answered privately, and the DM where the answer arrives.

Some platforms let the brand answer a public comment with one private message (replies.py,
kind "private_reply"). The customer answers in their inbox, which ingest files as another,
private conversation; on Facebook even under another id (the comment author's id is not their
Messenger PSID). Agents should see one case, with one clock, so the private conversation is
linked to the public one (Conversation.linked_from_id). What the platforms actually give:

1. The echo of our private reply (Messenger `message_echoes`, Instagram `messages` with
   `is_echo`): its message id is the `message_id` the send call returned, which the outbox
   stored on our private_reply message, and its thread is the customer's DM thread (PSID,
   IGSID). So an echo whose id is one of our private replies links its DM thread, whatever
   the ids look like. This is the rule that works on Facebook.
2. Where the commenter's id is also their DM id on the same channel (one identity), a DM
   from the author of a public conversation we answered privately within LINK_WINDOW.

Nothing is guessed from names or pictures: a wrong link would mix two customers' cases. A
private reply whose echo never came, on a platform with different ids, stays unlinked.

One SLA: the linked conversation gets the public one's first response and a "linked" event
dated at the private reply, so the customer's first DM runs a next-response clock of the same
thread (metrics.py), not a fresh first-response clock, and our answers there are "responded".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from socialcrm import models, sla_policies
from socialcrm.connector import ITEM_KINDS, NormalizedEvent
from socialcrm.eventlog import log_event_sync

conversation_t = models.Conversation.__table__
message_t = models.Message.__table__
#: Built once: an alias proxies every column, too slow to rebuild on each ingest batch.
_DM, _PUBLIC = conversation_t.alias("dm"), conversation_t.alias("pub")

#: Platforms allow a private reply up to 7 days after the comment; a DM long after our private
#: reply is a new matter, not its answer.
LINK_WINDOW = timedelta(days=7)
#: Replies that reached (or are on their way to) the customer; a failed one invited no answer.
LIVE_STATUSES = ("queued", "sent", "delivered", "read")
LINKED_SHOWN = 5


@dataclass(frozen=True)
class PrivateReply:
    conversation_id: int
    sent_at: datetime
    in_reply_to: str | None


def link_after_ingest(conn: Connection, channel_id: int, events: list[NormalizedEvent], now: datetime) -> set[int]:
    """Called by ingest inside its transaction; returns the private conversations it linked."""
    private = [ev for ev in events if not ev.public and ev.kind in ITEM_KINDS]
    if not private:
        return set()
    linked: set[int] = set()
    for ev in private:
        if ev.kind == "echo" or ev.author.is_self:
            linked |= _link_by_echo(conn, channel_id, ev)
    rows = _candidates(conn, channel_id, {ev.thread_external_id for ev in private
                                           if ev.kind != "echo" and not ev.author.is_self})
    linked |= _link_by_identity(conn, channel_id, [r for r in rows if r.linked_from_id is None], now)
    _continue_clocks(conn, {r.id for r in rows if r.linked_from_id is not None} | linked, now)
    return linked


def _candidates(conn: Connection, channel_id: int, thread_keys: set[str]) -> list[Any]:
    """The private conversations of these threads that are linked already, or whose customer has a
    public conversation on this channel (one indexed query; on most batches it returns nothing)."""
    if not thread_keys:
        return []
    dm, pub = _DM, _PUBLIC
    return list(conn.execute(
        sa.select(dm.c.id, dm.c.identity_id, dm.c.linked_from_id, pub.c.id.label("public_id"),
                  pub.c.identity_id.label("public_identity_id"))
        .select_from(dm.outerjoin(pub, sa.and_(pub.c.contact_id == dm.c.contact_id, pub.c.channel_id == channel_id,
                                               pub.c.public.is_(True))))
        .where(dm.c.channel_id == channel_id, dm.c.thread_key.in_(sorted(thread_keys)), dm.c.public.is_(False),
               sa.or_(dm.c.linked_from_id.is_not(None), pub.c.id.is_not(None)))).all())


def _continue_clocks(conn: Connection, conversation_ids: set[int], now: datetime) -> None:
    """Ingest gives a conversation's first customer message a first-response deadline; in a linked
    conversation it is a next response, so its deadline is recomputed from the log, where the
    "linked" event makes it so (metrics.py). Linked conversations are few: a handful per batch."""
    if not conversation_ids:
        return
    waiting = conn.execute(sa.select(conversation_t.c.id).where(
        conversation_t.c.id.in_(sorted(conversation_ids)), conversation_t.c.waiting_since.is_not(None))).scalars()
    for conversation_id in list(waiting):
        sla_policies.refresh_sync(conn, conversation_id, now)


def _private_reply_where(channel_id: int) -> list[Any]:
    return [message_t.c.channel_id == channel_id, message_t.c.kind == "private_reply",
            message_t.c.direction == "out", message_t.c.status.in_(LIVE_STATUSES)]


def _link_by_echo(conn: Connection, channel_id: int, ev: NormalizedEvent) -> set[int]:
    """Rule 1: our private reply's echo names the DM thread it landed in."""
    reply = conn.execute(sa.select(message_t.c.conversation_id, message_t.c.created_at,
                                   message_t.c.in_reply_to_external_id)
                         .where(message_t.c.external_id == ev.external_id, *_private_reply_where(channel_id))).first()
    if reply is None:
        return set()
    dm = conn.execute(sa.select(conversation_t.c.id).where(
        conversation_t.c.channel_id == channel_id, conversation_t.c.thread_key == ev.thread_external_id,
        conversation_t.c.public.is_(False))).scalar()
    if dm is None or dm == reply.conversation_id:
        return set()
    done = link(conn, dm, PrivateReply(reply.conversation_id, reply.created_at, reply.in_reply_to_external_id))
    return {dm} if done else set()


def _link_by_identity(conn: Connection, channel_id: int, rows: list[Any], now: datetime) -> set[int]:
    """Rule 2: a DM from the same identity as the author of a public conversation we answered privately."""
    same_person = {r.public_id: r for r in rows if r.public_identity_id == r.identity_id}
    if not same_person:
        return set()
    replies = conn.execute(
        sa.select(message_t.c.conversation_id, message_t.c.created_at, message_t.c.in_reply_to_external_id)
        .where(message_t.c.conversation_id.in_(sorted(same_person)), message_t.c.created_at >= now - LINK_WINDOW,
               *_private_reply_where(channel_id))
        .order_by(message_t.c.created_at.desc(), message_t.c.id.desc())).all()
    newest: dict[int, PrivateReply] = {}
    for r in replies:
        dm_id = same_person[r.conversation_id].id
        newest.setdefault(dm_id, PrivateReply(r.conversation_id, r.created_at, r.in_reply_to_external_id))
    return {dm_id for dm_id, reply in newest.items() if link(conn, dm_id, reply)}


def link(conn: Connection, dm_id: int, reply: PrivateReply) -> bool:
    """Link once (a conversation already linked keeps its link); carry the public clock over."""
    c = conversation_t
    first = conn.execute(sa.select(c.c.first_response_at).where(c.c.id == reply.conversation_id)).scalar()
    done = conn.execute(c.update().where(c.c.id == dm_id, c.c.linked_from_id.is_(None)).values(
        linked_from_id=reply.conversation_id, first_response_at=sa.func.coalesce(c.c.first_response_at, first)))
    if done.rowcount != 1:
        return False
    log_event_sync(conn, dm_id, "linked", at=reply.sent_at,
                   detail={"from_conversation_id": reply.conversation_id, "comment": reply.in_reply_to})
    return True


# -- what the conversation page shows --------------------------------------------------------

@dataclass
class LinkedView:
    public_conversation_id: int | None = None
    comment_text: str = ""
    comment_at: datetime | None = None
    private_conversations: list[Any] = field(default_factory=list)
    can_close_out: bool = False
    close_out_default: str = "We've sent you a private message."

    def __bool__(self) -> bool:
        return self.public_conversation_id is not None or bool(self.private_conversations)


async def linked_view(engine: AsyncEngine, conv: Any) -> LinkedView:
    """Both directions of the link. Linked conversations share a channel, hence a team: whoever
    may see one may see the other."""
    view = LinkedView()
    async with engine.connect() as conn:
        if conv.linked_from_id is not None:
            view.public_conversation_id = conv.linked_from_id
            comment = (await conn.execute(_answered_comment(conv.linked_from_id))).first()
            if comment is not None:
                view.comment_text, view.comment_at = comment.text, comment.created_at
        if conv.public:
            view.private_conversations = list((await conn.execute(sa.select(conversation_t.c.id).where(
                conversation_t.c.linked_from_id == conv.id).order_by(conversation_t.c.id).limit(LINKED_SHOWN))).all())
            view.can_close_out = bool(view.private_conversations) and await _close_out_open(conn, conv.id)
    return view


def _answered_comment(public_id: int) -> Any:
    """The comment our private reply answered (the newest one, if we replied privately more than once)."""
    reply = message_t.alias("reply")
    answered = (sa.select(reply.c.in_reply_to_external_id)
                .where(reply.c.conversation_id == public_id, reply.c.kind == "private_reply")
                .order_by(reply.c.id.desc()).limit(1).scalar_subquery())
    return sa.select(message_t.c.text, message_t.c.created_at).where(
        message_t.c.conversation_id == public_id, message_t.c.direction == "in",
        message_t.c.external_id == answered)


async def _close_out_open(conn: Any, public_id: int) -> bool:
    """Offer the public close-out note until a public reply follows the private one."""
    m = message_t
    last_private = await conn.scalar(sa.select(sa.func.max(m.c.id)).where(
        m.c.conversation_id == public_id, m.c.kind == "private_reply", m.c.status.in_(LIVE_STATUSES)))
    if last_private is None:
        return False
    later_public = await conn.scalar(sa.select(m.c.id).where(
        m.c.conversation_id == public_id, m.c.direction == "out", m.c.public.is_(True),
        m.c.id > last_private).limit(1))
    return later_public is None
