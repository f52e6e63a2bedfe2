"""NormalizedEvent -> contact, identity, conversation, message: exactly once.

Exactly-once is enforced by the database, not by check-then-insert: a message row has a
unique (channel_id, external_id) and is inserted with ON CONFLICT DO NOTHING, so a
redelivery, a re-poll or a concurrent duplicate in another process is a no-op. Edits,
deletes, reactions and delivery statuses that arrive before their item are kept in
`pendingchange` and applied when the item comes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from socialcrm import ingest_bulk, linked_threads, models, sla
from socialcrm.connector import ITEM_KINDS, NormalizedEvent
from socialcrm.db import insert
from socialcrm.eventlog import log_event_sync as log_event
from socialcrm.ingest_bulk import thread_key
from socialcrm.models import utcnow
from socialcrm.text import clean_text, preview

contact_t = models.Contact.__table__
identity_t = models.Identity.__table__
conversation_t = models.Conversation.__table__
message_t = models.Message.__table__
pending_t = models.PendingChange.__table__

#: Outbound delivery states only move forward; "failed" may replace any of them.
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


@dataclass(frozen=True)
class ChannelInfo:
    """What ingest needs to know about the channel an event belongs to."""

    id: int
    team_id: int
    sla_public_minutes: int
    sla_private_minutes: int
    #: The platform lets us answer a public comment privately, so a DM may continue a comment
    #: (linked_threads); elsewhere that lookup is skipped on every batch.
    private_reply_to_public: bool = True


@dataclass
class IngestResult:
    conversations: set[int] = field(default_factory=set)
    new_messages: list[int] = field(default_factory=list)
    duplicates: int = 0
    pending: int = 0


async def apply(conn: AsyncConnection, channel: ChannelInfo, events: list[NormalizedEvent],
                now: datetime | None = None) -> IngestResult:
    """Apply events in order inside the caller's (async) transaction."""
    return await conn.run_sync(apply_sync, channel, events, now)


def apply_sync(conn: Connection, channel: ChannelInfo, events: list[NormalizedEvent],
               now: datetime | None = None) -> IngestResult:
    """Apply events in order inside the caller's transaction.

    Consecutive inbound customer items (the bulk of every webhook batch) go through the
    bulk path; echoes and changes to existing items, which are rare, one by one.
    """
    result = IngestResult()
    now = now or utcnow()
    run: list[NormalizedEvent] = []
    for event in events:
        if event.kind in ITEM_KINDS and not _is_echo(event):
            run.append(event)
            continue
        _flush(conn, channel, run, result, now)
        run = []
        if event.kind in ITEM_KINDS:
            _ingest_echo(conn, channel, event, result)
        elif "watermark" in event.detail and event.target_external_id is None:
            _apply_watermark(conn, channel.id, event, result)
        elif "reachable" in event.detail:
            _set_reachable(conn, channel.id, event.author.external_id, bool(event.detail["reachable"]))
        else:
            _apply_change(conn, channel.id, event.target_external_id or event.external_id,
                                event.kind, clean_text(event.text), event.detail, event.created_at, result)
    _flush(conn, channel, run, result, now)
    if channel.private_reply_to_public:
        result.conversations |= linked_threads.link_after_ingest(conn, channel.id, events, now)
    return result


def _apply_watermark(conn: Connection, channel_id: int, ev: NormalizedEvent, res: IngestResult) -> None:
    """Messenger reads and deliveries name no message: everything we sent in the thread up to the
    watermark (epoch ms) was read or delivered. Nothing waits in pendingchange for these."""
    status = "read" if ev.kind == "read" else ev.detail.get("status", "delivered")
    upto = datetime.fromtimestamp(int(ev.detail["watermark"]) / 1000, tz=timezone.utc)
    conv_id = (conn.execute(sa.select(conversation_t.c.id).where(
        conversation_t.c.channel_id == channel_id, conversation_t.c.thread_key == ev.thread_external_id))).scalar()
    if conv_id is None:
        return
    behind = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK.get(status, 0)]
    done = conn.execute(message_t.update().where(
        message_t.c.conversation_id == conv_id, message_t.c.direction == "out", message_t.c.created_at <= upto,
        message_t.c.status.in_(behind), message_t.c.external_id.is_not(None)).values(status=status))
    if done.rowcount:
        res.conversations.add(conv_id)


def _set_reachable(conn: Connection, channel_id: int, external_id: str, reachable: bool) -> None:
    """A customer blocked us (Telegram my_chat_member "kicked") or unblocked us."""
    conn.execute(identity_t.update().where(identity_t.c.channel_id == channel_id,
                                                 identity_t.c.external_id == external_id)
                       .values(unreachable=not reachable))


def _is_echo(event: NormalizedEvent) -> bool:
    return event.kind == "echo" or event.author.is_self


def _flush(conn: Connection, ch: ChannelInfo, run: list[NormalizedEvent], res: IngestResult,
                 now: datetime) -> None:
    if not run:
        return
    stored = ingest_bulk.ingest_customer_items(conn, ch, run, res, now)
    for external_id in ingest_bulk.waiting_changes(conn, ch.id, stored):
        _apply_pending(conn, ch.id, external_id, res)


# -- items ----------------------------------------------------------------------------------

def _ingest_echo(conn: Connection, ch: ChannelInfo, ev: NormalizedEvent, res: IngestResult) -> None:
    """The brand's own message (sent from the platform's app): outbound, never a new customer case."""
    identity_id, contact_id = upsert_identity(conn, ch.id, ev)
    conv_id = _echo_conversation(conn, ch, ev)
    if conv_id is None:
        conv_id = _upsert_conversation(conn, ch, ev, identity_id, contact_id, is_echo=True)
    text = clean_text(ev.text)
    message_id = _insert_message(conn, ch.id, conv_id, ev, identity_id, text, is_echo=True)
    if message_id is None:
        res.duplicates += 1
        return
    res.new_messages.append(message_id)
    res.conversations.add(conv_id)
    _record_native_reply(conn, conv_id, ev.created_at, text, automated=ev.detail.get("automated") is True)
    _apply_pending(conn, ch.id, ev.external_id, res)


def upsert_identity(conn: Connection, channel_id: int, ev: NormalizedEvent) -> tuple[int, int]:
    """The author's identity on this channel, creating the contact on first sight."""
    a = ev.author
    row = (conn.execute(
        sa.select(identity_t.c.id, identity_t.c.contact_id, identity_t.c.name, identity_t.c.followers)
        .where(identity_t.c.channel_id == channel_id, identity_t.c.external_id == a.external_id))).first()
    fresh = {"name": clean_text(a.name), "handle": clean_text(a.handle), "avatar_url": a.avatar_url or "",
             "followers": a.followers}
    if row is not None:
        if (a.name and clean_text(a.name) != row.name) or (a.followers is not None and a.followers != row.followers):
            conn.execute(identity_t.update().where(identity_t.c.id == row.id)
                               .values(**{k: v for k, v in fresh.items() if v not in ("", None)}))
        return row.id, row.contact_id
    contact_id = (conn.execute(contact_t.insert().values(
        name=fresh["name"] or fresh["handle"] or a.external_id, created_at=utcnow())
        .returning(contact_t.c.id))).scalar_one()
    stmt = insert(conn, identity_t).values(
        channel_id=channel_id, contact_id=contact_id, original_contact_id=contact_id,
        external_id=a.external_id, is_self=a.is_self, unreachable=False, **fresh,
    ).on_conflict_do_nothing(index_elements=["channel_id", "external_id"]).returning(identity_t.c.id)
    identity_id = (conn.execute(stmt)).scalar()
    if identity_id is not None:
        return identity_id, contact_id
    # Another process created it between our select and insert: use theirs.
    conn.execute(contact_t.delete().where(contact_t.c.id == contact_id))
    row = (conn.execute(sa.select(identity_t.c.id, identity_t.c.contact_id).where(
        identity_t.c.channel_id == channel_id, identity_t.c.external_id == a.external_id))).one()
    return row.id, row.contact_id


def _echo_conversation(conn: Connection, ch: ChannelInfo, ev: NormalizedEvent) -> int | None:
    """An echo belongs where the brand answered: the replied-to item's conversation or the DM thread."""
    if ev.in_reply_to_external_id:
        found = (conn.execute(sa.select(message_t.c.conversation_id).where(
            message_t.c.channel_id == ch.id, message_t.c.external_id == ev.in_reply_to_external_id))).scalar()
        if found is not None:
            return found
    if not ev.public:
        return (conn.execute(sa.select(conversation_t.c.id).where(
            conversation_t.c.channel_id == ch.id, conversation_t.c.thread_key == ev.thread_external_id))).scalar()
    return None


def _upsert_conversation(conn: Connection, ch: ChannelInfo, ev: NormalizedEvent,
                               identity_id: int, contact_id: int, is_echo: bool) -> int:
    key = thread_key(ev, ev.author.external_id)
    where = (conversation_t.c.channel_id == ch.id, conversation_t.c.thread_key == key)
    found = (conn.execute(sa.select(conversation_t.c.id).where(*where))).scalar()
    if found is not None:
        return found
    # An echo with no conversation yet (the brand wrote first from the native app) is kept,
    # but resolved: it is not a customer waiting for an answer.
    stmt = insert(conn, conversation_t).values(
        channel_id=ch.id, team_id=ch.team_id, contact_id=contact_id, identity_id=identity_id,
        thread_key=key, thread_external_id=ev.thread_external_id, public=ev.public,
        status="resolved" if is_echo else "open", priority=0, created_at=utcnow(),
        last_message_preview="", assignment_reason="",
    ).on_conflict_do_nothing(index_elements=["channel_id", "thread_key"]).returning(conversation_t.c.id)
    conv_id = (conn.execute(stmt)).scalar()
    if conv_id is None:
        return (conn.execute(sa.select(conversation_t.c.id).where(*where))).scalar_one()
    log_event(conn, conv_id, "created", at=ev.created_at, detail={"public": ev.public})
    return conv_id


def _insert_message(conn: Connection, channel_id: int, conv_id: int, ev: NormalizedEvent,
                          identity_id: int, text: str, is_echo: bool) -> int | None:
    stmt = insert(conn, message_t).values(
        conversation_id=conv_id, channel_id=channel_id, external_id=ev.external_id,
        direction="out" if is_echo else "in", kind=ev.kind, public=ev.public,
        author_identity_id=identity_id, text=text, in_reply_to_external_id=ev.in_reply_to_external_id,
        attachments=[_attachment_json(a) for a in ev.attachments], status="sent" if is_echo else "received",
        error="", moderation="", deleted=False, reactions={}, created_at=ev.created_at,
    ).on_conflict_do_nothing(index_elements=["channel_id", "external_id"]).returning(message_t.c.id)
    return (conn.execute(stmt)).scalar()


def _attachment_json(a: Any) -> dict[str, Any]:
    return {"kind": a.kind, "url": a.url, "mime_type": a.mime_type, "name": clean_text(a.name)}


def _record_native_reply(conn: Connection, conv_id: int, at: datetime, text: str, automated: bool = False) -> None:
    """A reply made in the platform's own app answers the customer just like ours would.

    Unless a machine sent it: a connector marks an echo {"automated": true} when the platform
    says an app or automation sent it (auto-replies, away messages, bots). That is logged for
    the record but stops no SLA clock: only people answer.
    """
    conv = (conn.execute(sa.select(conversation_t.c.first_response_at, conversation_t.c.waiting_since,
                                         conversation_t.c.public).where(conversation_t.c.id == conv_id))).one()
    values: dict[str, Any] = {"last_message_at": at, "last_message_preview": preview(text)}
    if automated:
        log_event(conn, conv_id, "responded", at=at, detail={"via": "native app", "automated": True})
    elif conv.waiting_since is not None and at >= conv.waiting_since:
        values |= sla.row_values(None, conv.public, None, at)
        if conv.first_response_at is None:
            values["first_response_at"] = at
            log_event(conn, conv_id, "first_response", at=at, detail={"via": "native app"})
        else:
            log_event(conn, conv_id, "responded", at=at, detail={"via": "native app"})
    conn.execute(conversation_t.update().where(conversation_t.c.id == conv_id).values(**values))


# -- changes to existing items -------------------------------------------------------------

def _apply_change(conn: Connection, channel_id: int, target: str, kind: str, text: str,
                        detail: dict[str, Any], at: datetime, res: IngestResult) -> None:
    row = (conn.execute(sa.select(message_t.c.id, message_t.c.conversation_id).where(
        message_t.c.channel_id == channel_id, message_t.c.external_id == target))).first()
    if row is None:
        conn.execute(pending_t.insert().values(
            channel_id=channel_id, target_external_id=target, kind=kind, text=text, detail=dict(detail),
            created_at=at))
        res.pending += 1
        return
    _change_message(conn, row.id, kind, text, detail, at)
    res.conversations.add(row.conversation_id)


def _change_message(conn: Connection, message_id: int, kind: str, text: str,
                          detail: dict[str, Any], at: datetime) -> None:
    where = message_t.c.id == message_id
    if kind == "edit" and "moderation" in detail:
        conn.execute(message_t.update().where(where).values(moderation=detail["moderation"]))
    elif kind == "edit":
        # Apply only the newest edit, whatever order edits arrive in.
        conn.execute(message_t.update().where(
            where, sa.or_(message_t.c.edited_at.is_(None), message_t.c.edited_at <= at)
        ).values(text=text, edited_at=at))
    elif kind == "delete":
        conn.execute(message_t.update().where(where).values(deleted=True))
    elif kind == "reaction":
        _apply_reaction(conn, message_id, detail)
    elif kind in ("status", "read"):
        _apply_status(conn, message_id, detail.get("status", "read"), detail.get("error", ""))


def _apply_reaction(conn: Connection, message_id: int, detail: dict[str, Any]) -> None:
    current = (conn.execute(sa.select(message_t.c.reactions).where(message_t.c.id == message_id))).scalar()
    reactions = dict(current or {})
    who = str(detail.get("by", "customer"))
    if detail.get("action") == "unreact" or not detail.get("emoji"):
        reactions.pop(who, None)
    else:
        reactions[who] = detail["emoji"]
    conn.execute(message_t.update().where(message_t.c.id == message_id).values(reactions=reactions))


def _apply_status(conn: Connection, message_id: int, status: str, error: str) -> None:
    current = (conn.execute(sa.select(message_t.c.status).where(message_t.c.id == message_id))).scalar()
    if status == "failed":
        values = {"status": "failed", "error": error or "the platform reported a delivery failure"}
    elif STATUS_RANK.get(status, -1) > STATUS_RANK.get(current or "", -1) and current != "failed":
        values = {"status": status}
    else:
        return
    conn.execute(message_t.update().where(message_t.c.id == message_id).values(**values))


def _apply_pending(conn: Connection, channel_id: int, external_id: str, res: IngestResult) -> None:
    rows = (conn.execute(sa.select(pending_t).where(
        pending_t.c.channel_id == channel_id, pending_t.c.target_external_id == external_id,
    ).order_by(pending_t.c.created_at, pending_t.c.id))).all()
    if not rows:
        return
    message_id = (conn.execute(sa.select(message_t.c.id).where(
        message_t.c.channel_id == channel_id, message_t.c.external_id == external_id))).scalar_one()
    for row in rows:
        _change_message(conn, message_id, row.kind, row.text, row.detail, row.created_at)
    conn.execute(pending_t.delete().where(pending_t.c.id.in_([r.id for r in rows])))


async def apply_pending_for(conn: AsyncConnection, channel_id: int, external_id: str) -> None:
    """Used by the outbox: a status may arrive before send() returned the platform's id."""
    await conn.run_sync(_apply_pending, channel_id, external_id, IngestResult())

