"""Internal notes: messages with direction "note", for colleagues only.

A note is never sent anywhere: it gets no outbox entry, so neither the dispatcher nor a
connector ever sees it, and it does not touch the conversation's preview or SLA clocks.
@mentions are resolved when the note is written (to people who may see the conversation), so
a later rename or a new user with that name does not change who was told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from socialcrm import models, notifications
from socialcrm.conversations import ConversationNotFound
from socialcrm.models import utcnow
from socialcrm.text import clean_text
from socialcrm.users import SEE_ALL_ROLES

if TYPE_CHECKING:
    from socialcrm.core import Core

message_t = models.Message.__table__
conversation_t = models.Conversation.__table__
user_t = models.User.__table__
member_t = models.TeamMember.__table__
MAX_LENGTH = 5000
#: "@name" not preceded by a word character (so "kari@example.com" mentions nobody); a trailing
#: "." or "-" ends the sentence, not the name.
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9._@-]*[A-Za-z0-9_])")


class NoteRejected(ValueError):
    """A note we will not store; str(exc) says why in plain words."""


@dataclass(frozen=True)
class NoteResult:
    message_id: int
    notified: list[int]        # user ids told about it
    unmatched: list[str]       # @names that are nobody who may see this conversation


def mentioned_names(text: str) -> list[str]:
    """The @names in a note, lowercased, each once, in order."""
    return list(dict.fromkeys(m.group(1).lower() for m in MENTION.finditer(text)))


async def _mentionable(conn: AsyncConnection, names: list[str], team_id: int) -> dict[str, int]:
    """Active people called one of `names` who may see a conversation of `team_id`."""
    if not names:
        return {}
    in_team = sa.exists().where(member_t.c.user_id == user_t.c.id, member_t.c.team_id == team_id)
    rows = await conn.execute(sa.select(user_t.c.id, user_t.c.username).where(
        sa.func.lower(user_t.c.username).in_(names), user_t.c.is_active.is_(True),
        sa.or_(user_t.c.role.in_(sorted(SEE_ALL_ROLES)), in_team)))
    return {username.lower(): uid for uid, username in rows}


def _clean(text: str) -> str:
    text = clean_text(text).replace("\r\n", "\n").strip()
    if not text:
        raise NoteRejected("Write the note first.")
    if len(text) > MAX_LENGTH:
        raise NoteRejected(f"A note can have at most {MAX_LENGTH} characters; this one has {len(text)}.")
    return text


async def add_note(core: Core, conversation_id: int, author_id: int, text: str) -> NoteResult:
    """Store the note and its mentions in one transaction; then tell the thread and the mentioned."""
    text = _clean(text)
    async with core.engine.begin() as conn:
        conv = (await conn.execute(sa.select(conversation_t.c.channel_id, conversation_t.c.team_id)
                                   .where(conversation_t.c.id == conversation_id))).first()
        if conv is None:
            raise ConversationNotFound(conversation_id)
        message_id = (await conn.execute(message_t.insert().values(
            conversation_id=conversation_id, channel_id=conv.channel_id, direction="note", kind="note",
            public=False, author_user_id=author_id, text=text, attachments=[], status="note", error="",
            moderation="", deleted=False, reactions={}, created_at=utcnow(),
        ).returning(message_t.c.id))).scalar_one()
        names = mentioned_names(text)
        found = await _mentionable(conn, names, conv.team_id)
        notified = sorted({uid for uid in found.values() if uid != author_id})
        await notifications.create_on(conn, notified, conversation_id, message_id, author_id)
    core.hub.publish({"type": "conversation", "conversation_id": conversation_id, "team_id": conv.team_id})
    notifications.announce(core.hub, notified)
    return NoteResult(message_id, notified, [n for n in names if n not in found])
