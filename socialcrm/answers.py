"""Standard answers: reusable replies with placeholders, shared with a team or personal.

Placeholders are filled when the agent inserts an answer, so the agent sees and can edit the
final text before it goes. The substitution is a single pass over known `{names}`: a value is
never scanned again, so a customer called "{agent_name}" stays just that, and nothing like
str.format's attribute access can reach into Python objects. An unknown placeholder, or a known
one without a value, is left in the text as written and reported, never silently blanked.

    {customer_name}        the customer's name on this channel (else their contact name)
    {customer_first_name}  its first word
    {agent_name}           the replying agent's display name
    {agent_first_name}     its first word
    {channel_name}         the channel as the admins named it ("Acme Support")
    {platform_name}        the platform ("Facebook", "Telegram")
    {help:ID}              the short, click-counted link of help article ID (see helplinks)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import audit, models
from socialcrm.users import Viewer

answer_t = models.StandardAnswer.__table__
team_t = models.Team.__table__

PLACEHOLDER = re.compile(r"\{([a-z_]+|help:[0-9]+)\}")
KNOWN = ("customer_name", "customer_first_name", "agent_name", "agent_first_name", "channel_name", "platform_name")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
MAX_TITLE, MAX_BODY, MAX_TAGS = 200, 5000, 500
PICKER_LIMIT = 20
PAGE_LIMIT = 200


class AnswerRejected(ValueError):
    """The answer cannot be saved or used as asked; str() says why in plain words."""


# -- placeholders -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Filled:
    text: str
    #: Placeholders we do not know, left in the text as written ("{order_number}").
    unknown: tuple[str, ...] = ()
    #: Known placeholders without a value here (no customer name yet), left in the text too.
    missing: tuple[str, ...] = ()
    #: Help article ids whose links were put in.
    articles: tuple[int, ...] = ()


def first_word(name: str) -> str:
    return name.split()[0] if name.split() else ""


def placeholder_values(*, customer: str, agent: str, channel: str, platform: str) -> dict[str, str]:
    """The values of the known placeholders; customer-provided names are used as plain text."""
    customer, agent = " ".join(customer.split()), " ".join(agent.split())
    return {"customer_name": customer, "customer_first_name": first_word(customer), "agent_name": agent,
            "agent_first_name": first_word(agent), "channel_name": channel, "platform_name": platform}


def fill(body: str, values: Mapping[str, str], help_link: Callable[[int], str | None] = lambda _id: None) -> Filled:
    """Replace every known placeholder that has a value, in one pass; report the rest.

    `help_link(article_id)` returns the link to put in, or None for no such (active) article.
    """
    unknown: list[str] = []
    missing: list[str] = []
    articles: list[int] = []

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("help:"):
            url = help_link(int(name[5:]))
            if url is None:
                unknown.append(match.group(0))
                return match.group(0)
            articles.append(int(name[5:]))
            return url
        if name not in KNOWN:
            unknown.append(match.group(0))
            return match.group(0)
        if not values.get(name):
            missing.append(match.group(0))
            return match.group(0)
        return values[name]

    text = PLACEHOLDER.sub(one, body)
    return Filled(text, tuple(dict.fromkeys(unknown)), tuple(dict.fromkeys(missing)), tuple(dict.fromkeys(articles)))


def help_ids(body: str) -> list[int]:
    """The help article ids an answer's body refers to, in order, once each."""
    return list(dict.fromkeys(int(m.group(1)[5:]) for m in PLACEHOLDER.finditer(body)
                              if m.group(1).startswith("help:")))


# -- the answers ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Draft:
    """What the form sends: validated by `check_draft` before anything is written."""

    title: str
    body: str
    tags: str = ""
    language: str = ""
    #: "personal" or a team id (as text, from the form).
    scope: str = "personal"


@dataclass(frozen=True)
class Answer:
    id: int
    title: str
    body: str
    tags: tuple[str, ...]
    language: str
    team_id: int | None
    owner_id: int | None
    team_name: str = ""

    @property
    def personal(self) -> bool:
        return self.owner_id is not None


def normalize_tags(raw: str) -> str:
    """'Billing, refund  ,billing' -> 'billing,refund': lower case, trimmed, once each, in order."""
    tags = [" ".join(t.split()).lower() for t in raw.replace(";", ",").split(",")]
    return ",".join(dict.fromkeys(t for t in tags if t))


def check_draft(draft: Draft) -> dict[str, Any]:
    """The column values of a valid draft (without the scope), or AnswerRejected."""
    title, body = draft.title.strip(), draft.body.replace("\r\n", "\n").strip()
    tags, language = normalize_tags(draft.tags), draft.language.strip()
    if not title:
        raise AnswerRejected("Give the answer a title.")
    if len(title) > MAX_TITLE:
        raise AnswerRejected(f"The title is too long: at most {MAX_TITLE} characters.")
    if not body:
        raise AnswerRejected("The answer's text is empty.")
    if len(body) > MAX_BODY:
        raise AnswerRejected(f"The text is too long: at most {MAX_BODY} characters.")
    if len(tags) > MAX_TAGS:
        raise AnswerRejected(f"Too many tags: at most {MAX_TAGS} characters in all.")
    if language and not LANGUAGE.match(language):
        raise AnswerRejected("The language must be a code like 'en', 'nb' or 'sv' (or empty for any).")
    return {"title": title, "body": body, "tags": tags, "language": language}


def scope_columns(viewer: Viewer, scope: str) -> dict[str, int | None]:
    """Who owns the answer: the viewer alone, or a team (leads and admins only)."""
    if scope == "personal":
        return {"owner_id": viewer.id, "team_id": None}
    if not scope.isdigit():
        raise AnswerRejected("Choose whether the answer is yours or a team's.")
    if viewer.role not in ("lead", "admin"):
        raise AnswerRejected("Only team leads and admins manage a team's standard answers.")
    if not viewer.may_see_team(int(scope)):
        raise AnswerRejected("You are not in that team.")
    return {"owner_id": None, "team_id": int(scope)}


def may_see(viewer: Viewer, answer: Answer) -> bool:
    """Personal answers are their owner's alone, even for leads; team answers follow team visibility."""
    return answer.owner_id == viewer.id if answer.personal else viewer.may_see_team(answer.team_id)


def may_edit(viewer: Viewer, answer: Answer) -> bool:
    if answer.personal:
        return answer.owner_id == viewer.id
    return viewer.role in ("lead", "admin") and viewer.may_see_team(answer.team_id)


def _visible(viewer: Viewer, team_ids: list[int] | None = None) -> Any:
    """Own personal answers, plus team answers of `team_ids` (default: the viewer's teams)."""
    teams = answer_t.c.team_id.in_(team_ids if team_ids is not None else sorted(viewer.team_ids))
    if team_ids is None and viewer.sees_all:
        teams = answer_t.c.team_id.is_not(None)
    return sa.or_(answer_t.c.owner_id == viewer.id, teams)


def _matches(query: str) -> Any:
    """Every word of the query in the title, body or tags (case-insensitive; LIKE wildcards literal)."""
    conditions = []
    for word in query.lower().split()[:8]:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(sa.or_(*(sa.func.lower(col).like(pattern, escape="\\")
                                   for col in (answer_t.c.title, answer_t.c.body, answer_t.c.tags))))
    return sa.and_(sa.true(), *conditions)


def _answer(row: Any) -> Answer:
    return Answer(row.id, row.title, row.body, tuple(t for t in row.tags.split(",") if t), row.language,
                  row.team_id, row.owner_id, getattr(row, "team_name", None) or "")


async def search(conn: AsyncConnection, viewer: Viewer, query: str = "", *, team_ids: list[int] | None = None,
                 language: str = "", limit: int = PICKER_LIMIT) -> list[Answer]:
    """Answers the viewer may use, best first: personal before team, then by title; bounded."""
    where = [_visible(viewer, team_ids), _matches(query)]
    if language:
        where.append(answer_t.c.language.in_([language, ""]))
    stmt = (sa.select(answer_t, team_t.c.name.label("team_name"))
            .select_from(answer_t.outerjoin(team_t, team_t.c.id == answer_t.c.team_id))
            .where(*where).order_by(answer_t.c.owner_id.is_(None), answer_t.c.title, answer_t.c.id)
            .limit(min(limit, PAGE_LIMIT)))
    return [_answer(r) for r in (await conn.execute(stmt)).all()]


async def get(conn: AsyncConnection, answer_id: int) -> Answer | None:
    row = (await conn.execute(sa.select(answer_t).where(answer_t.c.id == answer_id))).first()
    return _answer(row) if row else None


async def create(engine: AsyncEngine, viewer: Viewer, draft: Draft) -> int:
    values = {**check_draft(draft), **scope_columns(viewer, draft.scope)}
    now = models.utcnow()
    async with engine.begin() as conn:
        answer_id = (await conn.execute(answer_t.insert().values(
            **values, created_by=viewer.id, created_at=now, updated_at=now).returning(answer_t.c.id))).scalar_one()
        if values["team_id"] is not None:
            await audit.record(conn, viewer.id, "answer.create", f"answer {answer_id}", None, values)
    return answer_id


async def update(engine: AsyncEngine, viewer: Viewer, answer_id: int, draft: Draft) -> None:
    values = {**check_draft(draft), **scope_columns(viewer, draft.scope)}
    async with engine.begin() as conn:
        before = await _editable(conn, viewer, answer_id)
        await conn.execute(answer_t.update().where(answer_t.c.id == answer_id)
                           .values(**values, updated_at=models.utcnow()))
        if before.team_id is not None or values["team_id"] is not None:
            await audit.record(conn, viewer.id, "answer.update", f"answer {answer_id}", _snapshot(before), values)


async def delete(engine: AsyncEngine, viewer: Viewer, answer_id: int) -> None:
    async with engine.begin() as conn:
        before = await _editable(conn, viewer, answer_id)
        await conn.execute(answer_t.delete().where(answer_t.c.id == answer_id))
        if before.team_id is not None:
            await audit.record(conn, viewer.id, "answer.delete", f"answer {answer_id}", _snapshot(before), None)


async def _editable(conn: AsyncConnection, viewer: Viewer, answer_id: int) -> Answer:
    answer = await get(conn, answer_id)
    if answer is None or not may_see(viewer, answer):
        raise LookupError(answer_id)
    if not may_edit(viewer, answer):
        raise AnswerRejected("Only team leads and admins change a team's standard answers.")
    return answer


def _snapshot(answer: Answer) -> dict[str, Any]:
    return {"title": answer.title, "body": answer.body, "tags": ",".join(answer.tags), "language": answer.language,
            "team_id": answer.team_id, "owner_id": answer.owner_id}


async def team_choices(conn: AsyncConnection, viewer: Viewer) -> list[tuple[int, str]]:
    """The teams whose answers the viewer may manage (none for agents)."""
    if viewer.role not in ("lead", "admin"):
        return []
    stmt = sa.select(team_t.c.id, team_t.c.name).order_by(team_t.c.name)
    if not viewer.sees_all:
        stmt = stmt.where(team_t.c.id.in_(sorted(viewer.team_ids)))
    return [(r.id, r.name) for r in (await conn.execute(stmt)).all()]
