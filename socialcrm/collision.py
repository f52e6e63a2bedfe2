"""Collision guard: a public reply is refused when someone answered in public since the draft began.

A duplicate public answer is worse than a slow one: the customer and everyone reading the post
see the brand answer twice, perhaps differently. So the composer carries a marker of what the
agent has seen, the number of public outbound messages in the thread (our colleagues' replies,
queued or sent, and the brand's replies from the platform's own app, which ingest stores as
outbound echoes), and a public reply is queued only if that number has not grown.

A count, not "the newest id" or a time: message ids are not allocated in commit order on
PostgreSQL and clocks differ, while the number of outbound messages only ever grows (messages
are never removed, only flagged), so it cannot miss one that committed late.

Two agents pressing Send at the same moment must not both pass: `claim` first takes a write
lock on the conversation row (PostgreSQL row lock; SQLite's single writer lock, taken as the
transaction's first statement so no stale snapshot is read), then counts, inside the same
transaction that queues the reply. The second sender waits for the first to commit, then sees
its reply and is refused.

Private replies are never refused for this (a second private message is not a public duplicate,
and the agent may mean to add something), with one exception the platforms make: one private
reply per public comment, which `claim_private_reply` re-checks under the same lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from socialcrm import models
from socialcrm.replies import ReplyRejected

conversation_t = models.Conversation.__table__
message_t = models.Message.__table__
user_t = models.User.__table__
identity_t = models.Identity.__table__

#: How many of the unseen replies the refusal shows (they are also in the thread above).
SHOWN = 5


@dataclass(frozen=True)
class SeenReply:
    """A public reply the agent had not seen when they started writing."""

    id: int
    author: str
    text: str
    status: str
    created_at: Any
    native_app: bool


class ReplyCollision(ReplyRejected):
    """Someone answered in public since this draft began; `newer` is what they said."""

    def __init__(self, newer: list[SeenReply], seen_now: int) -> None:
        self.newer, self.seen_now = newer, seen_now
        who = newer[0].author if newer else "Someone"
        super().__init__(f"Not sent: {who} replied publicly while you were writing. Read their reply "
                         f"above; send yours only if it is still needed.")


def is_public_outbound(message: Any) -> bool:
    return message.direction == "out" and bool(message.public)


def marker(messages: Iterable[Any]) -> int:
    """The marker for a composer showing these messages: how many public replies it shows."""
    return sum(1 for m in messages if is_public_outbound(m))


def parse_marker(value: object) -> int | None:
    """From the form field: None when absent (an API client or an old page: unguarded)."""
    text = str(value or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise ReplyRejected("The page sent an unreadable draft marker; reload the conversation.")
    return int(text)


def _public_outbound(conversation_id: int) -> Any:
    return sa.and_(message_t.c.conversation_id == conversation_id, message_t.c.direction == "out",
                   message_t.c.public.is_(True))


async def lock_conversation(conn: AsyncConnection, conversation_id: int) -> None:
    """A no-op write as the transaction's first statement: concurrent claims queue up here."""
    c = conversation_t
    await conn.execute(c.update().where(c.c.id == conversation_id).values(priority=c.c.priority))


async def claim(conn: AsyncConnection, conversation_id: int, seen: int) -> None:
    """Raise ReplyCollision unless the thread still has exactly the public replies the agent saw."""
    await lock_conversation(conn, conversation_id)
    count = await conn.scalar(sa.select(sa.func.count()).select_from(message_t)
                              .where(_public_outbound(conversation_id)))
    if count <= seen:
        return
    newer = await unseen_replies(conn, conversation_id, count - seen)
    if any(r.status != "failed" for r in newer):
        raise ReplyCollision(newer, count)


async def claim_private_reply(conn: AsyncConnection, conversation_id: int, comment_id: str | None) -> None:
    """Platforms take one private reply per comment: two agents answering the same comment
    privately at the same moment must not both queue one (the second would fail on the platform)."""
    await lock_conversation(conn, conversation_id)
    taken = await conn.scalar(sa.select(message_t.c.id).where(
        message_t.c.conversation_id == conversation_id, message_t.c.kind == "private_reply",
        message_t.c.in_reply_to_external_id == comment_id, message_t.c.status != "failed").limit(1))
    if taken is not None:
        raise ReplyRejected("A colleague has just answered this comment privately; "
                            "only one private reply per comment is possible.")


async def unseen_replies(conn: AsyncConnection, conversation_id: int, how_many: int) -> list[SeenReply]:
    """The newest `how_many` public replies (at most SHOWN), newest first."""
    author = sa.func.coalesce(sa.func.nullif(user_t.c.display_name, ""), user_t.c.username,
                              sa.func.nullif(identity_t.c.name, ""), "the brand")
    rows = (await conn.execute(
        sa.select(message_t.c.id, message_t.c.text, message_t.c.status, message_t.c.created_at,
                  message_t.c.author_user_id, author.label("author"))
        .select_from(message_t.outerjoin(user_t, user_t.c.id == message_t.c.author_user_id)
                     .outerjoin(identity_t, identity_t.c.id == message_t.c.author_identity_id))
        .where(_public_outbound(conversation_id))
        .order_by(message_t.c.id.desc()).limit(min(how_many, SHOWN)))).all()
    return [SeenReply(r.id, _who(r), r.text, r.status, r.created_at, r.author_user_id is None) for r in rows]


def _who(row: Any) -> str:
    if row.author_user_id is None:
        return f"{row.author} (in the platform's own app)"
    return row.author
