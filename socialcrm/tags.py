"""Tags on conversations: free text, normalised so that "Billing ", "billing" and "BILLING" are one tag.

A tag is only its text (the key of `conversationtag`), so there is no tag table to keep tidy:
a tag exists while some conversation carries it. Adding is idempotent; every change is logged
in the conversation event log as "tagged" / "untagged" (the SLA figures ignore both kinds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models
from socialcrm.db import insert
from socialcrm.eventlog import log_event
from socialcrm.models import utcnow

tag_t = models.ConversationTag.__table__
MAX_LENGTH = 40
#: Letters and digits of any script, and - _ . / inside; spaces become dashes.
_ALLOWED = re.compile(r"[^\W_][\w./-]*")
#: How many tags the tag picker offers; tags are a short vocabulary, not a search.
SUGGESTIONS = 200


class TagRejected(ValueError):
    """A tag we will not store; str(exc) says why in plain words."""


def normalise(text: str) -> str:
    """The stored form of a tag, or TagRejected: lowercase, trimmed, inner spaces as dashes."""
    tag = re.sub(r"\s+", "-", (text or "").strip().lower())
    if not tag:
        raise TagRejected("Write a tag first.")
    if len(tag) > MAX_LENGTH:
        raise TagRejected(f"A tag can have at most {MAX_LENGTH} characters.")
    if not _ALLOWED.fullmatch(tag):
        raise TagRejected("A tag may use letters, digits and - _ . / (it must start with a letter or digit).")
    return tag


async def add_on(conn: AsyncConnection, conversation_id: int, tag: str, by_user_id: int | None) -> bool:
    """Tag on the caller's transaction; False when it was already there (nothing logged)."""
    added = (await conn.execute(insert(conn, tag_t).values(
        conversation_id=conversation_id, tag=tag, by_user_id=by_user_id, created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["conversation_id", "tag"]))).rowcount
    if added:
        await log_event(conn, conversation_id, "tagged", user_id=by_user_id, detail={"tag": tag})
    return bool(added)


async def remove_on(conn: AsyncConnection, conversation_id: int, tag: str, by_user_id: int | None) -> bool:
    removed = (await conn.execute(tag_t.delete().where(
        tag_t.c.conversation_id == conversation_id, tag_t.c.tag == tag))).rowcount
    if removed:
        await log_event(conn, conversation_id, "untagged", user_id=by_user_id, detail={"tag": tag})
    return bool(removed)


async def add(engine: AsyncEngine, conversation_id: int, text: str, by_user_id: int | None) -> bool:
    tag = normalise(text)
    async with engine.begin() as conn:
        return await add_on(conn, conversation_id, tag, by_user_id)


async def remove(engine: AsyncEngine, conversation_id: int, text: str, by_user_id: int | None) -> bool:
    tag = normalise(text)
    async with engine.begin() as conn:
        return await remove_on(conn, conversation_id, tag, by_user_id)


async def tags_of(conn: AsyncConnection, conversation_ids: Iterable[int]) -> dict[int, list[str]]:
    """Tags of many conversations in one query (a page of the inbox), each list sorted."""
    ids = sorted(set(conversation_ids))
    out: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await conn.execute(sa.select(tag_t.c.conversation_id, tag_t.c.tag)
                              .where(tag_t.c.conversation_id.in_(ids)).order_by(tag_t.c.tag))
    for conversation_id, tag in rows:
        out[conversation_id].append(tag)
    return out


async def known_tags(engine: AsyncEngine) -> list[str]:
    """The first SUGGESTIONS tags in use, alphabetically, for the pickers.

    A plain SELECT DISTINCT would read every (tag, conversation) entry of the index on each inbox
    page; this walks it instead: each step is one seek to the next greater tag ("loose index scan").
    """
    first = sa.select(sa.func.min(tag_t.c.tag).label("tag"), sa.literal(1).label("n")).cte("walk", recursive=True)
    following = sa.select(sa.func.min(tag_t.c.tag)).where(tag_t.c.tag > first.c.tag).scalar_subquery()
    walk = first.union_all(sa.select(following, first.c.n + 1)
                           .where(first.c.tag.is_not(None), first.c.n < SUGGESTIONS))
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(walk.c.tag).where(walk.c.tag.is_not(None)))).scalars())
