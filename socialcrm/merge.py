"""One customer across channels: merge suggestions, accepted (and undone) only by an agent.

`detect` runs as a scheduler job, reading only what arrived since its last run, so ingest never
waits for it. It suggests merging two contacts when
  (a) both wrote the same e-mail address or phone number to us (normalised; a number counts
      as a phone only when written like one, so order numbers stay out),
  (b) their accounts on two channels have the same handle,
  (c) their accounts have the same name and the same picture.
A value written by more than two customers (the brand's own address, a shop's number) says
nothing about who is who, so it suggests nothing.

Nothing merges by itself. `accept` moves the newer contact's identities, and the conversations
that follow them, to the older contact in one transaction and records exactly what moved; `undo`
moves exactly that back (Identity.original_contact_id cannot: a contact may itself be the
result of an earlier merge). Both, and `dismiss`, write the audit log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import audit, models
from socialcrm.db import insert
from socialcrm.models import utcnow

suggestion_t = models.MergeSuggestion.__table__
point_t = models.ContactPoint.__table__
scan_t = models.MergeScan.__table__
message_t = models.Message.__table__
identity_t = models.Identity.__table__
conv_t = models.Conversation.__table__
contact_t = models.Contact.__table__
channel_t = models.Channel.__table__

BATCH = 2000
ROUNDS = 25
MIN_HANDLE = 3
#: A value held by more contacts than this is shared (the brand's address): no evidence.
MAX_HOLDERS = 2


class MergeRejected(ValueError):
    """A merge, undo or dismiss that cannot be done now; str(exc) says why in plain words."""


# -- what customers write: e-mail addresses and phone numbers ---------------------------------

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w@])")
PHONE = re.compile(r"(?<![\w#+/.-])(?:\+|00)?\d[\d \-().]{5,18}\d(?![\w/-])")
PHONE_WORDS = re.compile(r"\b(?:tlf|telefon|telefonnummer|mobil|mobilnummer|phone|tel|ring|call|sms|"
                         r"whatsapp|nummer|number|nr)\b[.:]?\s*$", re.IGNORECASE)
NOT_PHONE_WORDS = re.compile(r"(?:ordre|order|faktura|invoice|kunde|customer|konto|account|ref|sak|case|"
                             r"sporing|tracking|pakke|parcel|kvittering|receipt|id)\w*\W*(?:nr|no|number|nummer)?"
                             r"[.:#]?\s*$", re.IGNORECASE)


def emails_in(text: str) -> set[str]:
    return {m.group(0).strip(".").lower() for m in EMAIL.finditer(text)}


def normalise_phone(raw: str, before: str = "") -> str | None:
    """'+47 912 34 567', '0047-91234567', 'tlf 91234567' -> '+4791234567'; None if not a phone.

    With a country code (+ or 00): 8 to 15 digits. Without one: a Norwegian (8 digits, 4 or 9
    first) or Swedish (07 and 8 more) mobile number, written in groups like a phone number or
    right after a word like "tlf". Never right after "order", "faktura", "ref" and the like.
    """
    if NOT_PHONE_WORDS.search(before):
        return None
    digits = re.sub(r"\D", "", raw)
    if raw.startswith(("+", "00")):
        digits = digits[2:] if raw.startswith("00") else digits
        return f"+{digits}" if 8 <= len(digits) <= 15 and digits[0] != "0" else None
    if not (re.search(r"[ \-]", raw.strip()) or PHONE_WORDS.search(before)):
        return None
    if len(digits) == 8 and digits[0] in "49":
        return f"+47{digits}"
    if len(digits) == 10 and digits.startswith("07"):
        return f"+46{digits[1:]}"
    return None


def phones_in(text: str) -> set[str]:
    found = set()
    for m in PHONE.finditer(text):
        phone = normalise_phone(m.group(0).strip(), text[max(0, m.start() - 30):m.start()])
        if phone:
            found.add(phone)
    return found


# -- detection ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Holder:
    identity_id: int
    contact_id: int
    channel_id: int
    channel_name: str


async def detect(engine: AsyncEngine, batch: int = BATCH, rounds: int = ROUNDS) -> int:
    """Read what is new since the last run, a batch per transaction, until caught up (at most
    `rounds` batches a run, so one run stays short); returns how many suggestions it made."""
    made = 0
    for _ in range(rounds):
        async with engine.begin() as conn:
            messages, found = await _scan_messages(conn, batch)
            identities, more = await _scan_identities(conn, batch)
        made += found + more
        if messages < batch and identities < batch:
            break
    return made


async def _cursor(conn: AsyncConnection, name: str) -> int:
    return int(await conn.scalar(sa.select(scan_t.c.last_id).where(scan_t.c.name == name)) or 0)


async def _advance(conn: AsyncConnection, name: str, last_id: int) -> None:
    await conn.execute(insert(conn, scan_t).values(name=name, last_id=last_id).on_conflict_do_update(
        index_elements=["name"], set_={"last_id": last_id}))


async def _scan_messages(conn: AsyncConnection, batch: int) -> tuple[int, int]:
    """(messages read, suggestions made)."""
    rows = (await conn.execute(
        sa.select(message_t.c.id, message_t.c.author_identity_id, message_t.c.text)
        .select_from(message_t.join(identity_t, identity_t.c.id == message_t.c.author_identity_id))
        .where(message_t.c.id > await _cursor(conn, "messages"), message_t.c.direction == "in",
               identity_t.c.is_self.is_(False))
        .order_by(message_t.c.id).limit(batch))).all()
    if not rows:
        return 0, 0
    points = {(kind, value, r.author_identity_id): r.id for r in rows
              for kind, values in (("email", emails_in(r.text)), ("phone", phones_in(r.text))) for value in values}
    if points:
        await conn.execute(insert(conn, point_t).on_conflict_do_nothing(
            index_elements=["kind", "value", "identity_id"]),
            [{"kind": k, "value": v, "identity_id": i, "message_id": m} for (k, v, i), m in points.items()])
    await _advance(conn, "messages", rows[-1].id)
    return len(rows), await _suggest_shared_points(conn, {(k, v) for k, v, _ in points})


async def _suggest_shared_points(conn: AsyncConnection, keys: set[tuple[str, str]]) -> int:
    if not keys:
        return 0
    rows = (await conn.execute(
        sa.select(point_t.c.kind, point_t.c.value, identity_t.c.contact_id)
        .select_from(point_t.join(identity_t, identity_t.c.id == point_t.c.identity_id))
        .where(sa.tuple_(point_t.c.kind, point_t.c.value).in_(sorted(keys))).distinct())).all()
    holders: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        holders.setdefault((r.kind, r.value), set()).add(r.contact_id)
    made = 0
    for (kind, value), contacts in sorted(holders.items()):
        if len(contacts) == MAX_HOLDERS:
            made += await _suggest(conn, *sorted(contacts), kind, f"both wrote {value}")
    return made


async def _holders(conn: AsyncConnection, where: Any) -> list[Any]:
    return list((await conn.execute(
        sa.select(identity_t.c.id, identity_t.c.contact_id, identity_t.c.channel_id, identity_t.c.name,
                  identity_t.c.handle, identity_t.c.avatar_url, channel_t.c.name.label("channel_name"))
        .select_from(identity_t.join(channel_t, channel_t.c.id == identity_t.c.channel_id))
        .where(identity_t.c.is_self.is_(False), where))).all())


async def _scan_identities(conn: AsyncConnection, batch: int) -> tuple[int, int]:
    """(identities read, suggestions made)."""
    new = (await conn.execute(
        sa.select(identity_t.c.id, identity_t.c.handle, identity_t.c.name, identity_t.c.avatar_url)
        .where(identity_t.c.id > await _cursor(conn, "identities"), identity_t.c.is_self.is_(False))
        .order_by(identity_t.c.id).limit(batch))).all()
    if not new:
        return 0, 0
    await _advance(conn, "identities", new[-1].id)
    handles = sorted({r.handle.lower().lstrip("@") for r in new if len(r.handle.lstrip("@")) >= MIN_HANDLE})
    avatars = sorted({r.avatar_url for r in new if r.avatar_url and r.name.strip()})
    made = 0
    if handles:
        same = await _holders(conn, sa.func.lower(identity_t.c.handle).in_(handles + [f"@{h}" for h in handles]))
        made += await _suggest_groups(conn, same, lambda r: r.handle.lower().lstrip("@"), "handle", _handle_reason)
    if avatars:
        same = await _holders(conn, identity_t.c.avatar_url.in_(avatars))
        made += await _suggest_groups(conn, [r for r in same if r.name.strip()],
                                      lambda r: (r.avatar_url, r.name.strip().lower()), "name_avatar", _picture_reason)
    return len(new), made


def _handle_reason(a: Any, b: Any) -> str:
    return f"both are @{a.handle.lstrip('@')} ({a.channel_name} and {b.channel_name})"


def _picture_reason(a: Any, b: Any) -> str:
    return f"same name ({a.name.strip()}) and same picture ({a.channel_name} and {b.channel_name})"


async def _suggest_groups(conn: AsyncConnection, rows: list[Any], key: Any, kind: str, reason: Any) -> int:
    """Pairs of different contacts with the same key, on different channels for handles."""
    groups: dict[Any, list[Any]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    made = 0
    for members in groups.values():
        if len({m.contact_id for m in members}) != MAX_HOLDERS:
            continue
        for a, b in combinations(sorted(members, key=lambda m: m.contact_id), 2):
            if a.contact_id != b.contact_id and (kind != "handle" or a.channel_id != b.channel_id):
                made += await _suggest(conn, a.contact_id, b.contact_id, kind, reason(a, b))
                break
    return made


async def _suggest(conn: AsyncConnection, first: int, second: int, kind: str, reason: str) -> int:
    """Store one suggestion per pair, older contact kept; a pair seen before stays as it is."""
    keep, other = sorted((first, second))
    result = await conn.execute(insert(conn, suggestion_t).values(
        keep_contact_id=keep, merge_contact_id=other, kind=kind, reason=reason[:500], status="open", moved={},
        created_at=utcnow()).on_conflict_do_nothing(index_elements=["keep_contact_id", "merge_contact_id"]))
    return result.rowcount or 0


# -- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Suggestion:
    id: int
    keep_contact_id: int
    merge_contact_id: int
    other_contact_id: int      # the one that is not the contact being looked at
    other_name: str
    kind: str
    reason: str
    status: str
    decided_at: datetime | None


async def suggestions_for(conn: AsyncConnection, contact_id: int, limit: int = 10) -> list[Suggestion]:
    """Open suggestions about this contact (both sides still have accounts) and merges into it."""
    s = suggestion_t
    other = sa.case((s.c.keep_contact_id == contact_id, s.c.merge_contact_id), else_=s.c.keep_contact_id)
    both_have_accounts = sa.and_(sa.exists().where(identity_t.c.contact_id == s.c.keep_contact_id),
                                 sa.exists().where(identity_t.c.contact_id == s.c.merge_contact_id))
    rows = (await conn.execute(
        sa.select(s, other.label("other_id"), contact_t.c.name.label("other_name"))
        .select_from(s.join(contact_t, contact_t.c.id == other))
        .where(sa.or_(sa.and_(s.c.status == "open", sa.or_(s.c.keep_contact_id == contact_id,
                                                          s.c.merge_contact_id == contact_id), both_have_accounts),
                      sa.and_(s.c.status == "accepted", s.c.keep_contact_id == contact_id)))
        .order_by(s.c.id.desc()).limit(limit))).all()
    return [Suggestion(r.id, r.keep_contact_id, r.merge_contact_id, r.other_id, r.other_name, r.kind, r.reason,
                       r.status, r.decided_at) for r in rows]


async def suggestion_contacts(engine: AsyncEngine, suggestion_id: int) -> tuple[int, int] | None:
    """(keep, merge) contact ids, for the caller's access check; None if there is no such row."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(suggestion_t.c.keep_contact_id, suggestion_t.c.merge_contact_id)
                                  .where(suggestion_t.c.id == suggestion_id))).first()
    return (row.keep_contact_id, row.merge_contact_id) if row else None


# -- deciding -----------------------------------------------------------------------------------

async def _locked(conn: AsyncConnection, suggestion_id: int) -> Any:
    row = (await conn.execute(sa.select(suggestion_t).where(suggestion_t.c.id == suggestion_id)
                              .with_for_update())).first()
    if row is None:
        raise MergeRejected("There is no such merge suggestion.")
    return row


def _target(row: Any) -> str:
    return f"contact {row.keep_contact_id} + contact {row.merge_contact_id}"


async def accept(engine: AsyncEngine, suggestion_id: int, actor_id: int, now: datetime | None = None) -> dict[str, list[int]]:
    """Move the newer contact's identities and conversations to the older one; returns what moved."""
    now = now or utcnow()
    async with engine.begin() as conn:
        row = await _locked(conn, suggestion_id)
        if row.status != "open":
            raise MergeRejected(f"This suggestion was already {row.status}.")
        keep, other = row.keep_contact_id, row.merge_contact_id
        identities = sorted((await conn.scalars(sa.select(identity_t.c.id).where(identity_t.c.contact_id == other))).all())
        kept = await conn.scalar(sa.select(sa.exists().where(identity_t.c.contact_id == keep)))
        if not identities or not kept:
            raise MergeRejected("One of these customers has no accounts left: they were merged into someone else.")
        conversations = sorted((await conn.scalars(sa.select(conv_t.c.id).where(conv_t.c.contact_id == other))).all())
        await conn.execute(identity_t.update().where(identity_t.c.id.in_(identities)).values(contact_id=keep))
        await conn.execute(conv_t.update().where(conv_t.c.id.in_(conversations)).values(contact_id=keep))
        moved = {"identities": identities, "conversations": conversations}
        await _decide(conn, row, "accepted", moved, actor_id, now)
        await audit.record(conn, actor_id, "contact.merge", _target(row),
                           {"contact_id": other, **moved}, {"contact_id": keep, "reason": row.reason})
    return moved


async def undo(engine: AsyncEngine, suggestion_id: int, actor_id: int, now: datetime | None = None) -> dict[str, list[int]]:
    """Move back exactly what `accept` moved (and conversations those identities started since)."""
    async with engine.begin() as conn:
        row = await _locked(conn, suggestion_id)
        if row.status != "accepted":
            raise MergeRejected("Only an accepted merge can be undone.")
        keep, other = row.keep_contact_id, row.merge_contact_id
        identities = list(row.moved.get("identities", []))
        elsewhere = await conn.scalar(sa.select(sa.func.count()).select_from(identity_t).where(
            identity_t.c.id.in_(identities), identity_t.c.contact_id != keep))
        if elsewhere:
            raise MergeRejected("Some of these accounts were merged into another customer since: undo that first.")
        conversations = sorted((await conn.scalars(sa.select(conv_t.c.id).where(
            conv_t.c.contact_id == keep, sa.or_(conv_t.c.identity_id.in_(identities),
                                                conv_t.c.id.in_(row.moved.get("conversations", [])))))).all())
        await conn.execute(identity_t.update().where(identity_t.c.id.in_(identities)).values(contact_id=other))
        await conn.execute(conv_t.update().where(conv_t.c.id.in_(conversations)).values(contact_id=other))
        back = {"identities": sorted(identities), "conversations": conversations}
        # Open again: the evidence still stands; the agent may dismiss it for good.
        await _decide(conn, row, "open", {}, None, None, expect="accepted")
        await audit.record(conn, actor_id, "contact.unmerge", _target(row),
                           {"contact_id": keep, **back}, {"contact_id": other})
    return back


async def dismiss(engine: AsyncEngine, suggestion_id: int, actor_id: int, now: datetime | None = None) -> None:
    """Not the same person: the pair is never suggested again."""
    async with engine.begin() as conn:
        row = await _locked(conn, suggestion_id)
        if row.status != "open":
            raise MergeRejected(f"This suggestion was already {row.status}.")
        await _decide(conn, row, "dismissed", {}, actor_id, now or utcnow())
        await audit.record(conn, actor_id, "contact.merge_dismiss", _target(row), {"status": "open"},
                           {"status": "dismissed", "reason": row.reason})


async def _decide(conn: AsyncConnection, row: Any, status: str, moved: dict[str, Any], actor_id: int | None,
                  at: datetime | None, expect: str = "open") -> None:
    """A conditional update: of two agents deciding at once, the second is told, not applied twice."""
    done = await conn.execute(suggestion_t.update().where(suggestion_t.c.id == row.id, suggestion_t.c.status == expect)
                              .values(status=status, moved=moved, decided_by=actor_id, decided_at=at))
    if done.rowcount != 1:
        raise MergeRejected("Someone else decided this suggestion a moment ago.")


# -- the contact panel ---------------------------------------------------------------------------

PANEL_CONVERSATIONS = 10


@dataclass(frozen=True)
class Panel:
    contact: Any
    identities: list[Any]          # identity columns + channel_name, connector
    conversations: list[Any]       # visible ones, newest first
    more: bool                     # more visible conversations than shown
    hidden: int                    # conversations in teams the viewer is not in (counted up to 100)
    suggestions: list[Suggestion]


def _visible(viewer: Any) -> list[Any]:
    return [] if viewer.sees_all else [conv_t.c.team_id.in_(sorted(viewer.team_ids) or [-1])]


async def contact_visible(conn: AsyncConnection, viewer: Any, contact_id: int) -> bool:
    """A viewer may look at a customer who wrote to one of their teams (leads and admins: anyone)."""
    return await conn.scalar(sa.select(sa.exists().where(conv_t.c.contact_id == contact_id, *_visible(viewer)))) or False


async def may_decide(engine: AsyncEngine, viewer: Any, keep: int, other: int) -> bool:
    """The viewer sees the kept customer, and the other one too unless it has nothing left to see
    (after a merge its conversations are the kept customer's)."""
    async with engine.connect() as conn:
        if not await contact_visible(conn, viewer, keep):
            return False
        if await contact_visible(conn, viewer, other):
            return True
        return not await conn.scalar(sa.select(sa.exists().where(conv_t.c.contact_id == other)))


async def panel(engine: AsyncEngine, viewer: Any, contact_id: int, limit: int = PANEL_CONVERSATIONS,
                offset: int = 0) -> Panel | None:
    """Every identity of the customer and their conversations across channels; None if not visible."""
    async with engine.connect() as conn:
        contact = (await conn.execute(sa.select(contact_t).where(contact_t.c.id == contact_id))).first()
        if contact is None or not await contact_visible(conn, viewer, contact_id):
            return None
        identities = (await conn.execute(
            sa.select(identity_t, channel_t.c.name.label("channel_name"), channel_t.c.connector)
            .select_from(identity_t.join(channel_t, channel_t.c.id == identity_t.c.channel_id))
            .where(identity_t.c.contact_id == contact_id).order_by(identity_t.c.id))).all()
        when = sa.func.coalesce(conv_t.c.last_message_at, conv_t.c.created_at)
        conversations = (await conn.execute(
            sa.select(conv_t.c.id, conv_t.c.public, conv_t.c.status, conv_t.c.last_message_preview,
                      when.label("at"), channel_t.c.name.label("channel_name"), channel_t.c.connector)
            .select_from(conv_t.join(channel_t, channel_t.c.id == conv_t.c.channel_id))
            .where(conv_t.c.contact_id == contact_id, *_visible(viewer))
            .order_by(when.desc(), conv_t.c.id.desc()).offset(offset).limit(limit + 1))).all()
        hidden = 0 if viewer.sees_all else await conn.scalar(sa.select(sa.func.count()).select_from(
            sa.select(conv_t.c.id).where(conv_t.c.contact_id == contact_id,
                                         sa.not_(sa.and_(*_visible(viewer)))).limit(100).subquery()))
        return Panel(contact, list(identities), list(conversations[:limit]), len(conversations) > limit,
                     int(hidden or 0), await suggestions_for(conn, contact_id))
