"""Compose a reply: check it against the channel's declared capabilities, then queue it.

Every check happens here, before anything is queued, so that the agent is told in plain
words why a reply cannot go (too long, window closed, channel needs re-authorisation)
instead of discovering a failed message later. The message and its outbox entry are
written in one transaction: a reply is never stored without being queued, or vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from socialcrm import models, sla
from socialcrm.channels import LoadedChannel
from socialcrm.eventlog import log_event
from socialcrm.text import clean_text, preview
from socialcrm.models import utcnow

if TYPE_CHECKING:
    from socialcrm.core import Core

conversation_t = models.Conversation.__table__
identity_t = models.Identity.__table__
message_t = models.Message.__table__
outbox_t = models.OutboxEntry.__table__


class ReplyRejected(Exception):
    """The reply cannot be sent as written; str() is the reason for the agent."""


@dataclass(frozen=True)
class ComposerInfo:
    max_length: int | None
    public: bool
    window_closes_at: datetime | None
    can_send: bool
    reason: str = ""


def check_reply(channel: LoadedChannel, conv: Any, text: str, now: datetime) -> None:
    """Raise ReplyRejected unless this text may go to this conversation now."""
    if not text.strip():
        raise ReplyRejected("The reply is empty.")
    _check_channel(channel, conv.public, conv.last_customer_message_at, now)
    caps, name = channel.connector.capabilities, channel.connector.display_name
    limit = caps.max_length(conv.public)
    length = channel.connector.text_length(text)
    if limit is not None and length > limit:
        where = "public reply" if conv.public else "private message"
        raise ReplyRejected(f"Too long for a {name} {where}: {length} of at most {limit} characters.")


def _check_channel(channel: LoadedChannel, public: bool, last_customer_at: datetime | None, now: datetime) -> None:
    caps, name = channel.connector.capabilities, channel.connector.display_name
    if channel.row.status == "needs_reauth":
        raise ReplyRejected(f"This {name} channel needs re-authorisation by an admin; nothing can be sent until then.")
    if channel.row.status == "paused":
        raise ReplyRejected(f"This {name} channel is paused by an admin.")
    if public and not caps.public_replies:
        raise ReplyRejected(f"{name} does not allow public replies from us.")
    if not public and not caps.private_replies:
        raise ReplyRejected(f"{name} does not allow private replies from us.")
    closes = window_closes_at(channel, public, last_customer_at)
    if closes is not None and now > closes:
        raise ReplyRejected(f"The {name} reply window closed at {closes:%Y-%m-%d %H:%M} UTC: "
                            f"the customer must write again before we can answer privately.")


def window_closes_at(channel: LoadedChannel, public: bool, last_customer_at: datetime | None) -> datetime | None:
    window = channel.connector.capabilities.reply_window
    if public or window is None or last_customer_at is None:
        return None
    return last_customer_at + window


async def _load(core: Core, conversation_id: int) -> tuple[Any, LoadedChannel]:
    async with core.engine.connect() as conn:
        conv = (await conn.execute(sa.select(conversation_t, identity_t.c.external_id.label("customer_id"))
                                   .join(identity_t, identity_t.c.id == conversation_t.c.identity_id)
                                   .where(conversation_t.c.id == conversation_id))).first()
    if conv is None:
        raise ReplyRejected("This conversation does not exist.")
    channel = await core.channels.get(conv.channel_id)
    if channel is None:
        raise ReplyRejected("The channel of this conversation has been removed.")
    return conv, channel


async def composer_info(core: Core, conversation_id: int) -> ComposerInfo:
    conv, channel = await _load(core, conversation_id)
    closes = window_closes_at(channel, conv.public, conv.last_customer_message_at)
    try:
        _check_channel(channel, conv.public, conv.last_customer_message_at, utcnow())
    except ReplyRejected as exc:
        return ComposerInfo(channel.connector.capabilities.max_length(conv.public), conv.public, closes, False, str(exc))
    return ComposerInfo(channel.connector.capabilities.max_length(conv.public), conv.public, closes, True)


async def compose(core: Core, conversation_id: int, user_id: int, text: str) -> int:
    """Validate and queue a reply in the customer's own channel; returns the message id."""
    text = clean_text(text).replace("\r\n", "\n")
    conv, channel = await _load(core, conversation_id)
    now = utcnow()
    check_reply(channel, conv, text, now)
    async with core.engine.begin() as conn:
        message_id = (await conn.execute(message_t.insert().values(
            conversation_id=conv.id, channel_id=conv.channel_id, direction="out", kind="message",
            public=conv.public, author_user_id=user_id, text=text, in_reply_to_external_id=conv.reply_to_external_id,
            attachments=[], status="queued", error="", moderation="", deleted=False, reactions={}, created_at=now,
        ).returning(message_t.c.id))).scalar_one()
        await conn.execute(outbox_t.insert().values(
            message_id=message_id, channel_id=conv.channel_id, status="pending", attempts=0, next_attempt_at=now,
            last_error="", created_at=now, payload={
                "text": text, "public": conv.public, "thread_external_id": conv.thread_external_id,
                "recipient_external_id": conv.customer_id, "in_reply_to_external_id": conv.reply_to_external_id,
                "idempotency_key": f"socialcrm-outbox-{message_id}", "human_agent": True},
        ))
        await _record_response(conn, conv, user_id, text, now)
    core.hub.publish({"type": "conversation", "conversation_id": conv.id, "team_id": conv.team_id})
    core.hub.publish({"type": "inbox", "team_id": conv.team_id})
    core.wake_dispatcher()
    return message_id


async def _record_response(conn: Any, conv: Any, user_id: int, text: str, now: datetime) -> None:
    """An agent's reply answers the customer: the SLA clock stops, the first one is recorded."""
    values: dict[str, Any] = {"last_message_at": now, "last_message_preview": preview(text)}
    if conv.waiting_since is not None:
        values |= {"waiting_since": None, "sla_due_at": None, "priority": sla.priority(conv.public, None)}
        kind = "first_response" if conv.first_response_at is None else "responded"
        if conv.first_response_at is None:
            values["first_response_at"] = now
        await log_event(conn, conv.id, kind, at=now, user_id=user_id)
    await conn.execute(conversation_t.update().where(conversation_t.c.id == conv.id).values(**values))
