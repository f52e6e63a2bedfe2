"""CSAT and first-contact resolution per agent, channel and team, for the leads' dashboard.

Two sources, kept side by side because they answer different questions:
- what customers said (survey answers: rating, "solved on the first contact?", "shown how to
  help yourself?"), and
- what the event log shows (first-contact resolution: resolved with one reply by a person and
  not reopened within 7 days, `sla_figures.fcr_outcome`), over every conversation resolved in
  the range, surveyed or not.
Every figure keeps the conversation ids behind it, so each number links to its list.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from socialcrm import models
from socialcrm.metrics import event_from_row
from socialcrm.sla_figures import fcr_outcome

survey_t = models.CsatSurvey.__table__
conversation_t = models.Conversation.__table__
event_t = models.ConversationEvent.__table__
channel_t = models.Channel.__table__
team_t = models.Team.__table__
user_t = models.User.__table__

GROUPINGS = ("agent", "channel", "team")
#: Rows of an IN (...) list per query: well under SQLite's and asyncpg's parameter limits.
CHUNK = 500


@dataclass
class Figures:
    """One row of the table: a group (one agent, channel or team) or the total."""

    key: Any
    label: str
    sent: list[int] = field(default_factory=list)
    ratings: dict[int, int] = field(default_factory=dict)        # conversation id -> rating
    said_first_contact: dict[int, bool] = field(default_factory=dict)
    said_self_help: dict[int, bool] = field(default_factory=dict)
    fcr: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))   # yes | no | undecided

    @property
    def answered(self) -> int:
        return len(self.ratings)

    @property
    def response_rate_pct(self) -> float | None:
        return _pct(self.answered, len(self.sent))

    @property
    def average_rating(self) -> float | None:
        return sum(self.ratings.values()) / self.answered if self.ratings else None

    @property
    def csat_pct(self) -> float | None:
        """Share of answers rating 4 or 5: the usual CSAT definition."""
        return _pct(len(self.satisfied), self.answered)

    @property
    def satisfied(self) -> list[int]:
        return [c for c, r in self.ratings.items() if r >= 4]

    @property
    def said_first_contact_pct(self) -> float | None:
        return _pct(sum(self.said_first_contact.values()), len(self.said_first_contact))

    @property
    def said_self_help_pct(self) -> float | None:
        return _pct(sum(self.said_self_help.values()), len(self.said_self_help))

    @property
    def fcr_pct(self) -> float | None:
        yes, no = len(self.fcr["yes"]), len(self.fcr["no"])
        return _pct(yes, yes + no)

    def ids(self, what: str) -> list[int]:
        """The conversations behind one number of this row (what the drill-down lists)."""
        lists: dict[str, Callable[[], Iterable[int]]] = {
            "sent": lambda: self.sent, "answered": lambda: self.ratings, "satisfied": lambda: self.satisfied,
            "unsatisfied": lambda: (c for c, r in self.ratings.items() if r < 4),
            "said_first_contact": lambda: (c for c, v in self.said_first_contact.items() if v),
            "said_self_help": lambda: (c for c, v in self.said_self_help.items() if v),
            "fcr_yes": lambda: self.fcr["yes"], "fcr_no": lambda: self.fcr["no"],
        }
        if what not in lists:
            raise ValueError(f"unknown figure {what!r}")
        return sorted(lists[what]())


DRILL_DOWNS = ("sent", "answered", "satisfied", "unsatisfied", "said_first_contact", "said_self_help",
               "fcr_yes", "fcr_no")


def _pct(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


@dataclass(frozen=True)
class Report:
    grouping: str
    rows: list[Figures]
    total: Figures

    def row(self, key: str) -> Figures:
        """The total ("all") or the row whose key, written as text, is `key`."""
        if key == "all":
            return self.total
        for row in self.rows:
            if str(row.key) == key:
                return row
        raise KeyError(key)


async def report(conn: AsyncConnection, since: datetime, until: datetime, now: datetime,
                 grouping: str = "agent") -> Report:
    """Surveys sent and conversations resolved in [since, until), grouped by agent, channel or team.

    A conversation counts for the agent who resolved it (the survey's agent; for FCR the person
    on the first "resolved" event in the range).
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {', '.join(GROUPINGS)}")
    labels = await _labels(conn, grouping)
    groups: dict[Any, Figures] = {}
    total = Figures("all", "All")

    def rows_for(key: Any) -> tuple[Figures, Figures]:
        if key not in groups:
            groups[key] = Figures(key, labels.get(key, "Nobody" if key is None else f"#{key}"))
        return groups[key], total

    for s in await _surveys(conn, since, until):
        for fig in rows_for(_group_key(grouping, s.agent_id, s.channel_id, s.team_id)):
            _add_survey(fig, s)
    resolved = await _resolved(conn, since, until)
    events = await _events(conn, [r.conversation_id for r in resolved])
    for r in resolved:
        outcome = fcr_outcome(events.get(r.conversation_id, ()), now)
        if outcome is None:
            continue
        for fig in rows_for(_group_key(grouping, r.user_id, r.channel_id, r.team_id)):
            fig.fcr[outcome].append(r.conversation_id)
    rows = sorted(groups.values(), key=lambda f: (f.key is None, f.label.lower()))
    return Report(grouping, rows, total)


def _group_key(grouping: str, agent_id: int | None, channel_id: int, team_id: int) -> int | None:
    return {"agent": agent_id, "channel": channel_id, "team": team_id}[grouping]


def _add_survey(fig: Figures, s: Any) -> None:
    fig.sent.append(s.conversation_id)
    if s.rating is not None:
        fig.ratings[s.conversation_id] = s.rating
    if s.first_contact is not None:
        fig.said_first_contact[s.conversation_id] = s.first_contact
    if s.self_help is not None:
        fig.said_self_help[s.conversation_id] = s.self_help


async def _labels(conn: AsyncConnection, grouping: str) -> dict[int, str]:
    if grouping == "agent":
        name = sa.func.coalesce(sa.func.nullif(user_t.c.display_name, ""), user_t.c.username)
        stmt = sa.select(user_t.c.id, name)
    elif grouping == "channel":
        stmt = sa.select(channel_t.c.id, channel_t.c.name)
    else:
        stmt = sa.select(team_t.c.id, team_t.c.name)
    return {k: v for k, v in (await conn.execute(stmt)).all()}


async def _surveys(conn: AsyncConnection, since: datetime, until: datetime) -> Sequence[Any]:
    return (await conn.execute(sa.select(
        survey_t.c.conversation_id, survey_t.c.agent_id, survey_t.c.channel_id, survey_t.c.team_id,
        survey_t.c.rating, survey_t.c.first_contact, survey_t.c.self_help,
    ).where(survey_t.c.sent_at >= since, survey_t.c.sent_at < until))).all()


async def _resolved(conn: AsyncConnection, since: datetime, until: datetime) -> list[Any]:
    """The first resolve of each conversation in the range, with who did it."""
    first = (sa.select(event_t.c.conversation_id, sa.func.min(event_t.c.id).label("event_id"))
             .where(event_t.c.kind == "resolved", event_t.c.at >= since, event_t.c.at < until)
             .group_by(event_t.c.conversation_id).subquery())
    stmt = (sa.select(first.c.conversation_id, event_t.c.user_id, conversation_t.c.channel_id,
                      conversation_t.c.team_id)
            .join(event_t, event_t.c.id == first.c.event_id)
            .join(conversation_t, conversation_t.c.id == first.c.conversation_id))
    return list((await conn.execute(stmt)).all())


async def _events(conn: AsyncConnection, conversation_ids: list[int]) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = defaultdict(list)
    for start in range(0, len(conversation_ids), CHUNK):
        chunk = conversation_ids[start:start + CHUNK]
        rows = await conn.execute(sa.select(event_t.c.conversation_id, event_t.c.kind, event_t.c.at,
                                            event_t.c.user_id, event_t.c.detail)
                                  .where(event_t.c.conversation_id.in_(chunk)))
        for row in rows:
            found[row.conversation_id].append(event_from_row(row))
    return found


@dataclass(frozen=True)
class AnswerRow:
    conversation_id: int
    channel: str
    rating: int | None
    first_contact: bool | None
    self_help: bool | None
    comment: str
    sent_at: datetime
    preview: str


async def conversations(conn: AsyncConnection, ids: Sequence[int], limit: int = 200) -> list[AnswerRow]:
    """The drill-down list: each conversation with its survey answer, if any, newest first."""
    ids = list(ids)[-limit:] if len(ids) > limit else list(ids)
    if not ids:
        return []
    stmt = (sa.select(conversation_t.c.id, channel_t.c.name.label("channel"), survey_t.c.rating,
                      survey_t.c.first_contact, survey_t.c.self_help, survey_t.c.comment,
                      sa.func.coalesce(survey_t.c.sent_at, conversation_t.c.created_at).label("sent_at"),
                      conversation_t.c.last_message_preview)
            .join(channel_t, channel_t.c.id == conversation_t.c.channel_id)
            .outerjoin(survey_t, survey_t.c.conversation_id == conversation_t.c.id)
            .where(conversation_t.c.id.in_(ids))
            .order_by(conversation_t.c.id.desc()))
    return [AnswerRow(r.id, r.channel, r.rating, r.first_contact, r.self_help, r.comment or "", r.sent_at,
                      r.last_message_preview) for r in (await conn.execute(stmt)).all()]
