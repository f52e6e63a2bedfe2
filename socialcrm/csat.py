"""Customer-satisfaction surveys: offered in the customer's own private channel when a
conversation is resolved, answered on a page that needs no login, reported beside
first-contact resolution.

Why these rules:
- Private channels only. A survey link under a public complaint would put the rating request
  (and the customer's mood) on display; public threads never get one.
- Inside the platform's standard messaging window only. Outside it a survey would need the
  HUMAN_AGENT tag (which is for people answering, not for automated messages) or a paid
  template; we skip it and say why instead.
- One survey per conversation, ever (a unique row): a conversation resolved, reopened and
  resolved again does not ask the customer twice.
- The link's token is a bearer secret: only its SHA-256 is stored, it expires, and answering is
  one conditional UPDATE, so a double tap or a replayed form cannot answer twice.
- The survey message is queued like a reply but written by nobody (author NULL, kind
  "survey") and never logged as a response, so it cannot stop an SLA clock or count as the
  one reply of a first-contact resolution.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from socialcrm import models
from socialcrm.channels import LoadedChannel
from socialcrm.db import insert
from socialcrm.models import utcnow
from socialcrm.replies import ReplyRejected, check_channel, check_reachable, check_text, load_conversation, \
    queue_message, window
from socialcrm.text import clean_text

if TYPE_CHECKING:
    from socialcrm.core import Core

survey_t = models.CsatSurvey.__table__

SURVEY_LIFETIME = timedelta(days=7)
SURVEY_TEXT = "Thank you for contacting us! How did we do? One tap to answer: {url}"
RATINGS = ((5, "Very good"), (4, "Good"), (3, "OK"), (2, "Poor"), (1, "Very poor"))
COMMENT_MAX = 1000


class SurveyRejected(Exception):
    """The answer cannot be taken; str() says why, in the customer's terms."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Offer:
    sent: bool
    reason: str = ""
    message_id: int | None = None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def why_not_offered(channel: LoadedChannel, conv: Any, now: datetime) -> str:
    """'' when a survey may go to this conversation now, else the reason in words."""
    if not channel.row.csat_enabled:
        return "satisfaction surveys are off for this channel"
    if conv.public:
        return "public conversations never get a survey"
    try:
        check_channel(channel, False)
        check_reachable(channel, conv, False)
    except ReplyRejected as exc:
        return str(exc)
    state = window(channel, conv.last_customer_message_at, now).state
    if state not in ("open", "none"):
        return f"the {channel.connector.display_name} messaging window for automated messages has closed"
    return ""


async def offer_survey(core: Core, conversation_id: int, agent_id: int | None, now: datetime | None = None) -> Offer:
    """Queue the survey message if this resolved conversation should get one; never raises for
    a conversation that simply does not qualify (resolving must not fail because of a survey)."""
    now = now or utcnow()
    try:
        conv, channel = await load_conversation(core, conversation_id)
    except ReplyRejected as exc:
        return Offer(False, str(exc))
    reason = why_not_offered(channel, conv, now)
    if reason:
        return Offer(False, reason)
    token = secrets.token_urlsafe(24)
    text = SURVEY_TEXT.format(url=survey_url(core.settings.public_url, token))
    try:
        check_text(channel, False, text)
    except ReplyRejected as exc:
        return Offer(False, str(exc))
    async with core.engine.begin() as conn:
        survey_id = (await conn.execute(insert(conn, survey_t).values(
            conversation_id=conv.id, channel_id=conv.channel_id, team_id=conv.team_id, agent_id=agent_id,
            token_sha256=token_digest(token), sent_at=now, expires_at=now + SURVEY_LIFETIME, comment="",
        ).on_conflict_do_nothing(index_elements=["conversation_id"]).returning(survey_t.c.id))).scalar()
        if survey_id is None:
            return Offer(False, "this conversation has already had a survey")
        payload = {"text": text, "public": False, "thread_external_id": conv.thread_external_id,
                   "recipient_external_id": conv.customer_id, "in_reply_to_external_id": conv.reply_to_external_id,
                   "human_agent": False, "mode": "reply", "outside_window": False, "template": None, "extra": {}}
        message_id = await queue_message(conn, conv, None, text, False, "survey", payload, now)
        await conn.execute(survey_t.update().where(survey_t.c.id == survey_id).values(message_id=message_id))
    core.hub.publish({"type": "conversation", "conversation_id": conv.id, "team_id": conv.team_id})
    core.wake_dispatcher()
    return Offer(True, message_id=message_id)


def survey_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/s/{token}"


# -- answering ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Survey:
    id: int
    state: str                  # open | answered | expired
    rating: int | None
    details_given: bool


async def find(engine: Any, token: str, now: datetime | None = None) -> Survey | None:
    now = now or utcnow()
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(survey_t.c.id, survey_t.c.expires_at, survey_t.c.answered_at,
                                            survey_t.c.rating, survey_t.c.details_at)
                                  .where(survey_t.c.token_sha256 == token_digest(token)))).first()
    if row is None:
        return None
    state = "answered" if row.answered_at else ("expired" if row.expires_at <= now else "open")
    return Survey(row.id, state, row.rating, row.details_at is not None)


def parse_rating(value: Any) -> int:
    try:
        rating = int(str(value).strip())
    except (TypeError, ValueError):
        rating = 0
    if not 1 <= rating <= 5:
        raise SurveyRejected("Please choose a rating from 1 to 5.", 400)
    return rating


def parse_yes_no(value: Any) -> bool | None:
    """'yes' / 'no', or None when the customer left the question unanswered."""
    text = str(value or "").strip().lower()
    if text in ("", "skip"):
        return None
    if text not in ("yes", "no"):
        raise SurveyRejected("Please answer yes or no.", 400)
    return text == "yes"


def parse_comment(value: Any) -> str:
    comment = clean_text(str(value or "")).strip()
    if len(comment) > COMMENT_MAX:
        raise SurveyRejected(f"The comment is too long: {len(comment)} of at most {COMMENT_MAX} characters.", 400)
    return comment


async def answer(engine: Any, token: str, rating: int, now: datetime | None = None) -> None:
    """The one-tap part: the rating. Only an open survey takes it, exactly once."""
    now = now or utcnow()
    async with engine.begin() as conn:
        done = await conn.execute(survey_t.update().where(
            survey_t.c.token_sha256 == token_digest(token), survey_t.c.answered_at.is_(None),
            survey_t.c.expires_at > now).values(rating=rating, answered_at=now))
    if done.rowcount != 1:
        await _refuse(engine, token, now)


async def add_details(engine: Any, token: str, first_contact: bool | None, self_help: bool | None, comment: str,
                      now: datetime | None = None) -> None:
    """The optional questions after the rating: taken once, while the link is valid."""
    now = now or utcnow()
    async with engine.begin() as conn:
        done = await conn.execute(survey_t.update().where(
            survey_t.c.token_sha256 == token_digest(token), survey_t.c.answered_at.is_not(None),
            survey_t.c.details_at.is_(None), survey_t.c.expires_at > now,
        ).values(first_contact=first_contact, self_help=self_help, comment=comment, details_at=now))
    if done.rowcount != 1:
        survey = await find(engine, token, now)
        if survey is None:
            raise SurveyRejected("This survey link is not valid.", 404)
        if survey.details_given:
            raise SurveyRejected("We already have your answers. Thank you!", 409)
        if survey.state != "answered":
            raise SurveyRejected("Please choose a rating first.", 400)
        raise SurveyRejected("This survey link has expired.", 410)


async def _refuse(engine: Any, token: str, now: datetime) -> None:
    survey = await find(engine, token, now)
    if survey is None:
        raise SurveyRejected("This survey link is not valid.", 404)
    if survey.state == "answered":
        raise SurveyRejected("We already have your answer. Thank you!", 409)
    raise SurveyRejected("This survey link has expired.", 410)
