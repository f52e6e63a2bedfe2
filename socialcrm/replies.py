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

from socialcrm import helplinks, models, sla
from socialcrm.channels import LoadedChannel
from socialcrm.eventlog import log_event
from socialcrm.models import utcnow
from socialcrm.text import clean_text, preview

if TYPE_CHECKING:
    from socialcrm.core import Core

conversation_t = models.Conversation.__table__
identity_t = models.Identity.__table__
message_t = models.Message.__table__
outbox_t = models.OutboxEntry.__table__
user_t = models.User.__table__


class ReplyRejected(Exception):
    """The reply cannot be sent as written; str() is the reason for the agent."""


@dataclass(frozen=True)
class ComposerInfo:
    max_length: int | None
    public: bool
    window_closes_at: datetime | None
    can_send: bool
    reason: str = ""
    #: Shown beside the composer: e.g. that a reply now goes with the HUMAN_AGENT tag.
    note: str = ""
    #: A public conversation whose latest comment can still be answered privately.
    can_reply_privately: bool = False
    #: Outside the window where only templates may go: the ones this channel may send.
    templates: tuple[dict[str, Any], ...] = ()
    #: What is added under a public reply (the channel's signature, the agent's name filled in).
    signature: str = ""


@dataclass(frozen=True)
class Window:
    """Where a private reply stands against the platform's messaging window."""

    state: str                      # open | human_agent | template_only | closed | none
    closes_at: datetime | None      # when the current state ends

    @property
    def outside(self) -> bool:
        return self.state == "human_agent"


def window(channel: LoadedChannel, last_customer_at: datetime | None, now: datetime) -> Window:
    caps = channel.connector.capabilities
    if caps.reply_window is None or last_customer_at is None:
        return Window("none", None)
    closes = last_customer_at + caps.reply_window
    if now <= closes:
        return Window("open", closes)
    if caps.human_agent_window is not None and now <= last_customer_at + caps.human_agent_window:
        return Window("human_agent", last_customer_at + caps.human_agent_window)
    return Window("template_only" if caps.templates_outside_window else "closed", closes)


def check_text(channel: LoadedChannel, public: bool, text: str) -> None:
    if not text.strip():
        raise ReplyRejected("The reply is empty.")
    limit = channel.connector.capabilities.max_length(public)
    length = channel.connector.text_length(text, public)
    if limit is not None and length > limit:
        where = "public reply" if public else "private message"
        raise ReplyRejected(f"Too long for a {channel.connector.display_name} {where}: "
                            f"{length} of at most {limit} characters.")


def signed(channel: LoadedChannel, public: bool, text: str, agent: str) -> str:
    """A public reply gets the channel's signature on its own line, "{agent}" filled in;
    a private one never does."""
    signature = signature_for(channel, public, agent)
    return f"{text}\n{signature}" if signature else text


def signature_for(channel: LoadedChannel, public: bool, agent: str) -> str:
    template = (channel.row.reply_signature or "").strip()
    return template.replace("{agent}", agent) if public and template else ""


async def _agent_name(core: Core, user_id: int) -> str:
    async with core.engine.connect() as conn:
        row = (await conn.execute(sa.select(user_t.c.display_name, user_t.c.username)
                                  .where(user_t.c.id == user_id))).first()
    return (row.display_name or row.username) if row else ""


def check_reachable(channel: LoadedChannel, conv: Any, public: bool) -> None:
    if not public and conv.customer_unreachable:
        raise ReplyRejected(f"The customer has blocked us on {channel.connector.display_name}; "
                            f"a private message cannot reach them.")


def check_channel(channel: LoadedChannel, public: bool) -> None:
    caps, name = channel.connector.capabilities, channel.connector.display_name
    if channel.row.status == "needs_reauth":
        raise ReplyRejected(f"This {name} channel needs re-authorisation by an admin; nothing can be sent until then.")
    if channel.row.status == "paused":
        raise ReplyRejected(f"This {name} channel is paused by an admin.")
    if channel.row.status == "removed":
        raise ReplyRejected(f"This {name} channel has been removed by an admin; its history stays readable.")
    if public and not caps.public_replies:
        raise ReplyRejected(f"{name} does not allow public replies from us.")
    if not public and not caps.private_replies:
        raise ReplyRejected(f"{name} does not allow private replies from us.")


def check_window(channel: LoadedChannel, w: Window, template: dict[str, Any] | None) -> None:
    name = channel.connector.display_name
    if w.state == "closed":
        raise ReplyRejected(f"The {name} reply window closed at {w.closes_at:%Y-%m-%d %H:%M} UTC: "
                            f"the customer must write again before we can answer privately.")
    if w.state == "template_only" and not template:
        raise ReplyRejected(f"The {name} 24-hour window closed at {w.closes_at:%Y-%m-%d %H:%M} UTC: "
                            f"only an approved template message can be sent now.")


def check_template(channel: LoadedChannel, template: dict[str, Any]) -> str:
    """The template must be one the channel declares, with its number of parameters; returns
    the text stored for the agents to read."""
    params = [str(p) for p in template.get("parameters") or []]
    for allowed in channel.connector.allowed_templates():
        if (allowed.get("name"), allowed.get("language")) == (template.get("name"), template.get("language")):
            if int(allowed.get("parameters") or 0) != len(params):
                raise ReplyRejected(f"The template {template['name']} takes {allowed.get('parameters') or 0} "
                                    f"parameters, {len(params)} given.")
            return f"[template {template['name']} ({template['language']})] " + " | ".join(params)
    raise ReplyRejected("That template is not approved for this channel.")


def window_note(channel: LoadedChannel, w: Window) -> str:
    if w.state == "human_agent":
        return (f"Outside the standard window: your reply goes as a human agent's message, "
                f"possible until {w.closes_at:%Y-%m-%d %H:%M} UTC.")
    return ""


async def load_conversation(core: Core, conversation_id: int) -> tuple[Any, LoadedChannel]:
    async with core.engine.connect() as conn:
        conv = (await conn.execute(sa.select(conversation_t, identity_t.c.external_id.label("customer_id"),
                                             identity_t.c.unreachable.label("customer_unreachable"))
                                   .join(identity_t, identity_t.c.id == conversation_t.c.identity_id)
                                   .where(conversation_t.c.id == conversation_id))).first()
    if conv is None:
        raise ReplyRejected("This conversation does not exist.")
    channel = await core.channels.get(conv.channel_id)
    if channel is None:
        raise ReplyRejected("The channel of this conversation has been removed.")
    return conv, channel


async def composer_info(core: Core, conversation_id: int, agent: str = "") -> ComposerInfo:
    """`agent`: the viewer's display name, for the signature shown (else a placeholder)."""
    conv, channel = await load_conversation(core, conversation_id)
    signature = signature_for(channel, conv.public, agent or "(your name)")
    now = utcnow()
    w = window(channel, conv.last_customer_message_at, now) if not conv.public else Window("none", None)
    limit = channel.connector.capabilities.max_length(conv.public)
    private_ok = await _can_reply_privately(core, channel, conv, now)
    templates = tuple(channel.connector.allowed_templates()) if w.state == "template_only" else ()
    try:
        check_channel(channel, conv.public)
        check_reachable(channel, conv, conv.public)
        check_window(channel, w, template=None)
    except ReplyRejected as exc:
        return ComposerInfo(limit, conv.public, w.closes_at, False, str(exc), can_reply_privately=private_ok,
                            templates=templates, signature=signature)
    return ComposerInfo(limit, conv.public, w.closes_at, True, note=window_note(channel, w),
                        can_reply_privately=private_ok, signature=signature)


async def _can_reply_privately(core: Core, channel: LoadedChannel, conv: Any, now: datetime) -> bool:
    try:
        await _check_private_reply(core, channel, conv, now)
    except ReplyRejected:
        return False
    return True


async def _check_private_reply(core: Core, channel: LoadedChannel, conv: Any, now: datetime) -> None:
    """Meta: one private message per public comment, within 7 days of it."""
    caps, name = channel.connector.capabilities, channel.connector.display_name
    if not conv.public or not caps.private_reply_to_public or not conv.reply_to_external_id:
        raise ReplyRejected(f"{name} cannot answer this conversation privately.")
    if caps.private_reply_window and conv.last_customer_message_at and \
            now > conv.last_customer_message_at + caps.private_reply_window:
        raise ReplyRejected(f"{name} allows a private reply only within "
                            f"{caps.private_reply_window.days} days of the comment.")
    async with core.engine.connect() as conn:
        done = (await conn.execute(sa.select(message_t.c.id).where(
            message_t.c.conversation_id == conv.id, message_t.c.kind == "private_reply",
            message_t.c.in_reply_to_external_id == conv.reply_to_external_id,
            message_t.c.status != "failed"))).first()
    if done is not None:
        raise ReplyRejected(f"This comment has already been answered privately; {name} allows one private reply.")


async def compose(core: Core, conversation_id: int, user_id: int, text: str, *, mode: str = "reply",
                  template: dict[str, Any] | None = None, seen_public_replies: int | None = None) -> int:
    """Validate and queue a reply in the customer's own channel; returns the message id.

    mode "reply" answers in the conversation's own visibility (public to public, private to
    private); "private_reply" answers a public comment with one private message (Meta).
    seen_public_replies: the composer's collision marker (see collision.py); a public reply is
    refused with collision.ReplyCollision if the thread has more public replies than that.
    """
    text = clean_text(text).replace("\r\n", "\n")
    conv, channel = await load_conversation(core, conversation_id)
    now = utcnow()
    public = conv.public and mode != "private_reply"
    if mode == "private_reply":
        await _check_private_reply(core, channel, conv, now)
    check_channel(channel, public)
    check_reachable(channel, conv, public)
    w = window(channel, conv.last_customer_message_at, now) if not conv.public else Window("none", None)
    check_window(channel, w, template)
    if template:
        text = check_template(channel, template)
    else:
        # A help article's own address becomes its counted short link; before the length check.
        text = await helplinks.shorten_article_urls(core.engine, core.settings.public_url, text, conv.id,
                                                    conv.channel_id, user_id)
        # Signed before the length check: the limit counts what the customer will see.
        text = signed(channel, public, text, await _agent_name(core, user_id)) if text.strip() else text
        check_text(channel, public, text)
    payload = {"extra": {"in_reply_to_kind": await _kind_of(core, conv.channel_id, conv.reply_to_external_id)},
               "text": text, "public": public, "thread_external_id": conv.thread_external_id,
               "recipient_external_id": conv.customer_id, "in_reply_to_external_id": conv.reply_to_external_id,
               "human_agent": True, "mode": "template" if template else mode, "outside_window": w.outside,
               "template": template}
    message_id = await _queue(core, conv, user_id, text, public, "private_reply" if mode == "private_reply"
                              else "message", payload, now, guard=seen_public_replies if public else None)
    core.hub.publish({"type": "conversation", "conversation_id": conv.id, "team_id": conv.team_id})
    core.hub.publish({"type": "inbox", "team_id": conv.team_id})
    core.wake_dispatcher()
    return message_id


async def _kind_of(core: Core, channel_id: int, external_id: str | None) -> str | None:
    """What the answered item is (comment, mention, message): some platforms reply differently."""
    if external_id is None:
        return None
    async with core.engine.connect() as conn:
        return await conn.scalar(sa.select(message_t.c.kind).where(
            message_t.c.channel_id == channel_id, message_t.c.external_id == external_id))


async def _queue(core: Core, conv: Any, user_id: int, text: str, public: bool, kind: str,
                 payload: dict[str, Any], now: datetime, guard: int | None = None) -> int:
    """The message and its outbox entry in one transaction: never one without the other."""
    from socialcrm import collision  # collision subclasses ReplyRejected, defined above

    async with core.engine.begin() as conn:
        if guard is not None:
            await collision.claim(conn, conv.id, guard)
        if kind == "private_reply":   # the one-per-comment rule, checked again under the lock
            await collision.claim_private_reply(conn, conv.id, conv.reply_to_external_id)
        message_id = await queue_message(conn, conv, user_id, text, public, kind, payload, now)
        await helplinks.mark_sent(conn, core.settings.public_url, conv.id, message_id, text)
        await _record_response(conn, conv, user_id, text, now)
    return message_id


async def queue_message(conn: Any, conv: Any, user_id: int | None, text: str, public: bool, kind: str,
                        payload: dict[str, Any], now: datetime) -> int:
    """Insert an outbound message and its outbox entry on the caller's transaction.

    Also used for messages no person wrote (the satisfaction survey): those pass user_id None
    and do not call _record_response, so they never count as a response in the SLA figures.
    """
    message_id = (await conn.execute(message_t.insert().values(
        conversation_id=conv.id, channel_id=conv.channel_id, direction="out", kind=kind,
        public=public, author_user_id=user_id, text=text, in_reply_to_external_id=conv.reply_to_external_id,
        attachments=[], status="queued", error="", moderation="", deleted=False, reactions={}, created_at=now,
    ).returning(message_t.c.id))).scalar_one()
    payload["idempotency_key"] = f"socialcrm-outbox-{message_id}"
    await conn.execute(outbox_t.insert().values(
        message_id=message_id, channel_id=conv.channel_id, status="pending", attempts=0, next_attempt_at=now,
        last_error="", created_at=now, payload=payload))
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


async def retry(core: Core, message_id: int) -> None:
    """Queue a failed reply again, as the agent asked: same text, same idempotency key."""
    async with core.engine.begin() as conn:
        done = await conn.execute(outbox_t.update().where(
            outbox_t.c.message_id == message_id, outbox_t.c.status == "failed",
        ).values(status="pending", attempts=0, next_attempt_at=utcnow(), last_error=""))
        if done.rowcount != 1:
            raise ReplyRejected("Only a failed reply can be sent again.")
        await conn.execute(message_t.update().where(message_t.c.id == message_id).values(status="queued", error=""))
        conv = (await conn.execute(sa.select(conversation_t.c.id, conversation_t.c.team_id).join(
            message_t, message_t.c.conversation_id == conversation_t.c.id).where(message_t.c.id == message_id))).one()
    core.hub.publish({"type": "conversation", "conversation_id": conv.id, "team_id": conv.team_id})
    core.wake_dispatcher()
