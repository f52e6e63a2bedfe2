"""The ingest hot path: a run of inbound customer items in a fixed number of statements.

Per-item SQL costs a database round trip per statement (and a thread hop on aiosqlite),
which caps ingestion at a few hundred items a second. Here a whole run — all the new
comments and messages of a webhook batch — takes one SELECT or one executemany per table,
whatever its length. The result is the same as applying the items one by one, in order;
`tests/test_ingest.py` runs the same scenarios through both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from socialcrm import models, sla, sla_policies
from socialcrm.connector import NormalizedEvent
from socialcrm.db import insert
from socialcrm.eventlog import event_row
from socialcrm.eventlog import log_events_sync as log_events
from socialcrm.models import utcnow
from socialcrm.payload import language_code
from socialcrm.text import clean_text, preview

if TYPE_CHECKING:
    from socialcrm.ingest import ChannelInfo, IngestResult

contact_t = models.Contact.__table__
identity_t = models.Identity.__table__
conversation_t = models.Conversation.__table__
message_t = models.Message.__table__
pending_t = models.PendingChange.__table__

CONV_FIELDS = ("status", "waiting_since", "sla_due_at", "sla_risk_at", "last_message_at", "last_customer_message_at",
               "last_message_preview", "reply_to_external_id", "priority", "identity_id", "contact_id", "snoozed_until",
               "language")
#: Waiting on the customer, by hand ("pending") or until a time ("snoozed"): the customer writing
#: resumes the paused clock rather than starting a new one.
PAUSED = ("pending", "snoozed")


def thread_key(event: NormalizedEvent, customer_external_id: str) -> str:
    """A DM thread is one conversation; a public discussion is one per (root post, customer)."""
    if event.public:
        return f"{event.thread_external_id}#{customer_external_id}"
    return event.thread_external_id


@dataclass
class ConvState:
    """A conversation's row as the run changes it, written back once at the end."""

    id: int
    public: bool
    self_owned: bool
    values: dict[str, Any]
    changed: bool = False
    followers: int | None = None


def ingest_customer_items(conn: Connection, ch: ChannelInfo, events: list[NormalizedEvent],
                                res: IngestResult, now: datetime) -> list[str]:
    """Store new inbound items; returns the external ids stored (pending changes may wait on them)."""
    events = _new_only(conn, ch.id, events, res)
    if not events:
        return []
    identities = _identities(conn, ch.id, events)
    keys = _thread_keys(conn, ch.id, events)
    convs, log = _conversations(conn, ch, events, identities, keys)
    stored = _insert_messages(conn, ch.id, events, identities, convs, keys)
    res.duplicates += len(events) - len(stored)
    setup = sla_policies.cached_setup_sync(conn)
    paused = [c for c in convs.values() if c.values["status"] in PAUSED]
    for ev in events:
        if ev.external_id in stored:
            conv = convs[keys[ev.external_id]]
            _fold_customer_message(ch, conv, ev, identities[ev.author.external_id], now, log, setup)
            res.new_messages.append(stored[ev.external_id])
            res.conversations.add(conv.id)
    _resume_paused(conn, ch, [c for c in paused if c.changed], log, setup, now)
    _write_conversations(conn, [c for c in convs.values() if c.changed])
    log_events(conn, log)
    return list(stored)


def _new_only(conn: Connection, channel_id: int, events: list[NormalizedEvent],
                    res: IngestResult) -> list[NormalizedEvent]:
    """Drop items already stored or repeated within the run (redeliveries, re-polls)."""
    ids = {ev.external_id for ev in events}
    known = set((conn.execute(sa.select(message_t.c.external_id).where(
        message_t.c.channel_id == channel_id, message_t.c.external_id.in_(ids)))).scalars())
    fresh: dict[str, NormalizedEvent] = {}
    for ev in events:
        if ev.external_id not in known and ev.external_id not in fresh:
            fresh[ev.external_id] = ev
    res.duplicates += len(events) - len(fresh)
    return list(fresh.values())


def _identities(conn: Connection, channel_id: int, events: list[NormalizedEvent]) -> dict[str, tuple[int, int]]:
    """author external id -> (identity id, contact id), creating contacts on first sight."""
    authors = {ev.author.external_id: ev.author for ev in events}
    found = _select_identities(conn, channel_id, list(authors))
    _refresh_profiles(conn, found, authors)
    missing = [authors[a] for a in authors if a not in found]
    if missing:
        contact_ids = (conn.execute(
            contact_t.insert().returning(contact_t.c.id, sort_by_parameter_order=True),
            [{"name": clean_text(a.name) or clean_text(a.handle) or a.external_id, "created_at": utcnow()}
             for a in missing])).scalars().all()
        rows = [{"channel_id": channel_id, "contact_id": cid, "original_contact_id": cid,
                 "external_id": a.external_id, "is_self": a.is_self, "unreachable": False, **_profile(a)}
                for a, cid in zip(missing, contact_ids)]
        conn.execute(insert(conn, identity_t).on_conflict_do_nothing(
            index_elements=["channel_id", "external_id"]), rows)
        # Another process may have won a race for some: read back what is really stored.
        found |= _select_identities(conn, channel_id, [a.external_id for a in missing])
        orphans = set(contact_ids) - {v[1] for v in found.values()}
        if orphans:
            conn.execute(contact_t.delete().where(contact_t.c.id.in_(orphans)))
    return {k: (v[0], v[1]) for k, v in found.items()}


def _profile(a: Any) -> dict[str, Any]:
    return {"name": clean_text(a.name), "handle": clean_text(a.handle), "avatar_url": a.avatar_url or "",
            "followers": a.followers}


def _select_identities(conn: Connection, channel_id: int, external_ids: list[str]) -> dict[str, tuple]:
    rows = (conn.execute(sa.select(identity_t.c.external_id, identity_t.c.id, identity_t.c.contact_id,
                                         identity_t.c.name, identity_t.c.followers).where(
        identity_t.c.channel_id == channel_id, identity_t.c.external_id.in_(external_ids)))).all()
    return {r.external_id: (r.id, r.contact_id, r.name, r.followers) for r in rows}


def _refresh_profiles(conn: Connection, found: dict[str, tuple], authors: dict[str, Any]) -> None:
    """Names and follower counts change; keep the latest the platform told us."""
    for ext, (identity_id, _, name, followers) in found.items():
        a = authors[ext]
        if (a.name and clean_text(a.name) != name) or (a.followers is not None and a.followers != followers):
            conn.execute(identity_t.update().where(identity_t.c.id == identity_id).values(
                **{k: v for k, v in _profile(a).items() if v not in ("", None)}))


def _thread_keys(conn: Connection, channel_id: int, events: list[NormalizedEvent]) -> dict[str, str]:
    """external id -> the conversation key it belongs to.

    Normally the platform's thread id (DESIGN §4). But a customer who answers our reply, or
    their own earlier message, continues that conversation even where the platform names the
    thread after the item answered (Mastodon, X webhooks): otherwise every exchange would open
    a new conversation."""
    keys = {ev.external_id: thread_key(ev, ev.author.external_id) for ev in events}
    answered = {ev.in_reply_to_external_id for ev in events if ev.in_reply_to_external_id}
    if not answered:
        return keys
    m, c, i = message_t, conversation_t, identity_t
    rows = (conn.execute(sa.select(m.c.external_id, m.c.direction, i.c.external_id.label("author"),
                                         c.c.thread_key, c.c.public)
                               .join(c, c.c.id == m.c.conversation_id).outerjoin(i, i.c.id == m.c.author_identity_id)
                               .where(m.c.channel_id == channel_id, m.c.external_id.in_(answered)))).all()
    parents: dict[str, Any] = {r.external_id: r for r in rows}
    for ev in events:  # in order: an answer to an item earlier in the same batch follows it too
        parent = parents.get(ev.in_reply_to_external_id or "")
        if parent is not None and parent.public == ev.public and _continues(parent, ev):
            keys[ev.external_id] = parent.thread_key
        parents.setdefault(ev.external_id, _Parent(ev.external_id, "in", ev.author.external_id,
                                                   keys[ev.external_id], ev.public))
    return keys


@dataclass(frozen=True)
class _Parent:
    external_id: str
    direction: str
    author: str
    thread_key: str
    public: bool


def _continues(parent: Any, ev: NormalizedEvent) -> bool:
    """Our reply to this customer, or the customer's own message; never another customer's."""
    if parent.direction == "out":
        return not ev.public or parent.thread_key.endswith(f"#{ev.author.external_id}")
    return parent.author == ev.author.external_id


def _conversations(conn: Connection, ch: ChannelInfo, events: list[NormalizedEvent],
                         identities: dict[str, tuple[int, int]],
                         keys: dict[str, str]) -> tuple[dict[str, ConvState], list[dict]]:
    """thread key -> state of its conversation, creating the missing ones."""
    first_by_key: dict[str, NormalizedEvent] = {}
    for ev in events:
        first_by_key.setdefault(keys[ev.external_id], ev)
    states = _select_conversations(conn, ch.id, list(first_by_key))
    missing = [k for k in first_by_key if k not in states]
    log: list[dict] = []
    if missing:
        rows = []
        for key in missing:
            ev = first_by_key[key]
            identity_id, contact_id = identities[ev.author.external_id]
            rows.append({"channel_id": ch.id, "team_id": ch.team_id, "contact_id": contact_id,
                         "identity_id": identity_id, "thread_key": key, "thread_external_id": ev.thread_external_id,
                         "public": ev.public, "status": "open", "priority": 0, "created_at": utcnow(),
                         "last_message_preview": "", "assignment_reason": "", "language": event_language(ev)})
        conn.execute(insert(conn, conversation_t).on_conflict_do_nothing(
            index_elements=["channel_id", "thread_key"]), rows)
        created = _select_conversations(conn, ch.id, missing)
        for key, state in created.items():
            state.values["status"] = "new"  # folded into "open" by the first message
            ev = first_by_key[key]
            log.append(event_row(state.id, "created", at=ev.created_at, detail={"public": ev.public}))
        states |= created
    return states, log


def _select_conversations(conn: Connection, channel_id: int, keys: list[str]) -> dict[str, ConvState]:
    c = conversation_t
    rows = (conn.execute(sa.select(c.c.id, c.c.thread_key, c.c.public, identity_t.c.is_self,
                                         *[c.c[f] for f in CONV_FIELDS])
                               .join(identity_t, identity_t.c.id == c.c.identity_id)
                               .where(c.c.channel_id == channel_id, c.c.thread_key.in_(keys)))).all()
    return {r.thread_key: ConvState(r.id, r.public, bool(r.is_self), {f: getattr(r, f) for f in CONV_FIELDS})
            for r in rows}


def _insert_messages(conn: Connection, channel_id: int, events: list[NormalizedEvent],
                           identities: dict[str, tuple[int, int]], convs: dict[str, ConvState],
                           keys: dict[str, str]) -> dict[str, int]:
    rows = [{
        "conversation_id": convs[keys[ev.external_id]].id, "channel_id": channel_id,
        "external_id": ev.external_id, "direction": "in", "kind": ev.kind, "public": ev.public,
        "author_identity_id": identities[ev.author.external_id][0], "text": clean_text(ev.text),
        "in_reply_to_external_id": ev.in_reply_to_external_id,
        "attachments": [{"kind": a.kind, "url": a.url, "mime_type": a.mime_type, "name": clean_text(a.name)}
                        for a in ev.attachments],
        "status": "received", "error": "", "moderation": "", "deleted": False, "reactions": {},
        "created_at": ev.created_at} for ev in events]
    result = conn.execute(insert(conn, message_t).on_conflict_do_nothing(
        index_elements=["channel_id", "external_id"]).returning(message_t.c.id, message_t.c.external_id), rows)
    return {r.external_id: r.id for r in result}


def _fold_customer_message(ch: ChannelInfo, conv: ConvState, ev: NormalizedEvent, who: tuple[int, int],
                           now: datetime, log: list[dict], setup: sla_policies.SlaSetup) -> None:
    """What one customer message does to its conversation: the SLA clock, reopening, the preview."""
    v, at = conv.values, min(ev.created_at, now)
    first_ever = v["last_customer_message_at"] is None
    v["last_customer_message_at"] = at
    if not v["language"]:
        v["language"] = event_language(ev)
    if v["last_message_at"] is None or at >= v["last_message_at"]:
        v |= {"last_message_at": at, "last_message_preview": preview(clean_text(ev.text)) or "(attachment)",
              "reply_to_external_id": ev.external_id}
    conv.changed = True
    if v["status"] == "spam":
        # Kept, but out of every queue whatever the sender writes next; an agent can take it back.
        log.append(event_row(conv.id, "customer_message", at=at))
        return
    if v["status"] == "resolved":
        log.append(event_row(conv.id, "reopened", at=at))
    conv.followers = ev.author.followers
    if v["waiting_since"] is None or v["status"] == "resolved":
        # The first customer message starts the first-response clock; any later one that finds
        # nobody waiting (we answered, or it was resolved) starts a next-response clock.
        policy = _policy(ch, conv.public, setup)
        minutes = policy.first_response_minutes if first_ever else policy.next_response_minutes
        clock = sla.start_clock(policy.calendar, at, minutes, policy.at_risk_fraction)
        v |= sla.row_values(clock, conv.public, ev.author.followers, now)
    v["status"], v["snoozed_until"] = "open", None
    if conv.self_owned:  # the brand wrote first (an echo); the conversation now belongs to the customer
        v["identity_id"], v["contact_id"] = who
        conv.self_owned = False
    conv.changed = True
    log.append(event_row(conv.id, "customer_message", at=at))


def event_language(ev: NormalizedEvent) -> str:
    """The customer's language as the platform reported it, "" when it did not.

    Only customer items set it: it is what the conversation is routed and answered in, so the
    first one known stays (a brand echo's language is the brand's, not the customer's)."""
    return language_code(ev.detail.get("language")) or ""


def _policy(ch: ChannelInfo, public: bool, setup: sla_policies.SlaSetup) -> sla_policies.SlaPolicy:
    """The channel store's first-response target (it follows the channel page at once) in the team's policy."""
    first = ch.sla_public_minutes if public else ch.sla_private_minutes
    return setup.policy_in_team(ch.team_id, ch.id, public, first)


def _resume_paused(conn: Connection, ch: ChannelInfo, convs: list[ConvState], log: list[dict],
                   setup: sla_policies.SlaSetup, now: datetime) -> None:
    """A customer wrote to a conversation waiting on them: a clock paused by "pending" goes on
    with the time it had already used, so its deadline comes from the log (one query, and only
    for the rare paused conversations of this run)."""
    if not convs:
        return
    stored = sla_policies.events_of_sync(conn, [c.id for c in convs])
    for conv in convs:
        events = stored[conv.id] + [sla_policies.event_from_row(r) for r in log if r["conversation_id"] == conv.id]
        conv.values |= sla_policies.clock_values(events, _policy(ch, conv.public, setup), conv.public,
                                                 conv.followers, now)


def _write_conversations(conn: Connection, states: list[ConvState]) -> None:
    if not states:
        return
    stmt = conversation_t.update().where(conversation_t.c.id == sa.bindparam("b_id")).values(
        {f: sa.bindparam(f"b_{f}") for f in CONV_FIELDS})
    conn.execute(stmt, [{"b_id": s.id, **{f"b_{f}": s.values[f] for f in CONV_FIELDS}} for s in states])


def waiting_changes(conn: Connection, channel_id: int, external_ids: list[str]) -> list[str]:
    """Which of these items have edits, deletes or statuses that arrived before them."""
    if not external_ids:
        return []
    return list((conn.execute(sa.select(pending_t.c.target_external_id).distinct().where(
        pending_t.c.channel_id == channel_id, pending_t.c.target_external_id.in_(external_ids)))).scalars())
