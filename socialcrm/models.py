"""The tables. Hot paths (ingest, inbox) use SQLAlchemy Core on the same metadata."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator):
    """Stores UTC without a zone (SQLite has none) and always hands back aware UTC datetimes."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


#: 'open' written into the SQL text rather than bound: the planners only use a partial index
#: (WHERE status = 'open' ...) when the query states the same condition literally.
OPEN = sa.literal_column("'open'")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def created() -> Any:
    return Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))


def json_col(default: Any = None) -> Any:
    factory = (lambda: dict(default)) if isinstance(default, dict) else (lambda: list(default or []))
    return Field(default_factory=factory, sa_column=sa.Column(sa.JSON(), nullable=False))


# -- people -------------------------------------------------------------------------------

class Team(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, unique=True))


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, unique=True))
    display_name: str = ""
    password_hash: str
    role: str = Field(default="agent", max_length=10)      # agent | lead | admin
    is_active: bool = True
    #: Bumped on logout-everywhere, password change and disable: older sessions stop working.
    session_epoch: int = 0
    online: bool = False
    capacity: int = 5
    online_since: datetime | None = ts()
    created_at: datetime = created()


class TeamMember(SQLModel, table=True):
    team_id: int = Field(foreign_key="team.id", primary_key=True)
    user_id: int = Field(foreign_key="user.id", primary_key=True)


# -- channels -----------------------------------------------------------------------------

class Channel(SQLModel, table=True):
    """A configured connector instance: one Facebook page, one bot, one simulated brand."""

    __table_args__ = (sa.UniqueConstraint("connector", "account_id", name="uq_channel_account"),)

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=40, index=True)
    name: str
    account_id: str | None = Field(default=None, max_length=200)
    team_id: int = Field(foreign_key="team.id")
    #: Non-secret settings in clear; secret ones (SecretStr fields) live Fernet-encrypted below.
    settings: dict = json_col({})
    secrets_encrypted: str = ""
    status: str = Field(default="active", max_length=20)   # active | paused | needs_reauth | failing | removed
    status_reason: str = ""
    sla_public_minutes: int | None = None
    sla_private_minutes: int | None = None
    auto_assign: bool = True
    #: Whether resolving a private conversation sends the customer a satisfaction survey (socialcrm.csat).
    csat_enabled: bool = False
    #: Appended to public replies on its own line; "{agent}" becomes the replying agent's name.
    reply_signature: str = ""
    #: Fetch events with the connector's poll() (for platforms without webhooks, or as a backstop).
    poll_enabled: bool = False
    last_event_at: datetime | None = ts()
    created_at: datetime = created()


class PollCursor(SQLModel, table=True):
    channel_id: int = Field(foreign_key="channel.id", primary_key=True)
    cursor: str | None = None
    last_success_at: datetime | None = ts()
    last_error: str = ""
    failures: int = 0
    next_poll_at: datetime | None = ts()


# -- customers and conversations ----------------------------------------------------------

class Contact(SQLModel, table=True):
    """A person; their accounts on each channel are identities (merging is reversible)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = ""
    created_at: datetime = created()


class Identity(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("channel_id", "external_id", name="uq_identity_external"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id")
    contact_id: int = Field(foreign_key="contact.id", index=True)
    #: The contact this identity was created with, so a merge can be undone.
    original_contact_id: int = Field(foreign_key="contact.id")
    external_id: str = Field(max_length=200)
    name: str = ""
    handle: str = ""
    avatar_url: str = ""
    followers: int | None = None
    is_self: bool = False
    unreachable: bool = False


class Conversation(SQLModel, table=True):
    """A DM thread, or one customer's part of a public discussion under one root post."""

    __table_args__ = (
        sa.UniqueConstraint("channel_id", "thread_key", name="uq_conversation_thread"),
        # The inbox tabs and the router read these in priority order and stop after a page:
        # every ORDER BY column is in the index, so no query sorts or scans past its page.
        sa.Index("ix_conversation_queue", "status", sa.text("priority DESC"), "waiting_since", "id"),
        sa.Index("ix_conversation_team_queue", "team_id", "status", sa.text("priority DESC"), "waiting_since", "id"),
        sa.Index("ix_conversation_assignee", "assignee_id", "status", sa.text("priority DESC"), "waiting_since", "id"),
        sa.Index("ix_conversation_unassigned", sa.text("priority DESC"), "waiting_since", "id",
                 sqlite_where=sa.text("status = 'open' AND assignee_id IS NULL"),
                 postgresql_where=sa.text("status = 'open' AND assignee_id IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id")
    team_id: int = Field(foreign_key="team.id")
    contact_id: int = Field(foreign_key="contact.id", index=True)
    identity_id: int = Field(foreign_key="identity.id")
    thread_key: str = Field(max_length=420)
    thread_external_id: str = Field(max_length=200)
    #: The item a reply should answer: the customer's latest comment in a public thread.
    reply_to_external_id: str | None = Field(default=None, max_length=200)
    public: bool
    status: str = Field(default="open", max_length=10)      # open | pending | resolved
    priority: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False, server_default="0"))
    waiting_since: datetime | None = ts()
    sla_due_at: datetime | None = ts()
    #: When the running response clock has used the team's at-risk share of its target (issue 5):
    #: the inbox flags "breaching soon" from it and the SLA tick raises the priority then.
    #: Read only while sla_due_at is set (answering, pausing and resolving clear the deadline).
    sla_risk_at: datetime | None = ts()
    first_response_at: datetime | None = ts()
    last_customer_message_at: datetime | None = ts()
    last_message_at: datetime | None = ts()
    last_message_preview: str = ""
    assignee_id: int | None = Field(default=None, foreign_key="user.id")
    assignment_reason: str = ""
    #: Working together (issue 7): when a snoozed conversation comes back (meaningful only while
    #: status = 'snoozed'), why it was resolved, and the customer's language if the platform said.
    snoozed_until: datetime | None = ts()
    resolve_reason: str = Field(default="", sa_column=sa.Column(sa.String(300), nullable=False, server_default=""))
    language: str = Field(default="", sa_column=sa.Column(sa.String(16), nullable=False, server_default=""))
    #: One tracked thread (issue 7): the public conversation whose comment we answered privately,
    #: when this private conversation is where the customer's answer arrived (linked_threads.py).
    linked_from_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    created_at: datetime = created()


class Message(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("channel_id", "external_id", name="uq_message_external"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    channel_id: int = Field(foreign_key="channel.id")
    #: NULL until the platform has accepted an outbound reply (and always for notes).
    external_id: str | None = Field(default=None, max_length=200)
    direction: str = Field(max_length=4)                    # in | out | note
    kind: str = Field(default="message", max_length=20)
    public: bool = False
    author_identity_id: int | None = Field(default=None, foreign_key="identity.id")
    author_user_id: int | None = Field(default=None, foreign_key="user.id")
    text: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False, server_default=""))
    in_reply_to_external_id: str | None = Field(default=None, max_length=200)
    attachments: list = json_col([])
    #: queued | sent | delivered | read | failed (outbound); received (inbound)
    status: str = Field(default="received", max_length=10)
    error: str = ""
    moderation: str = ""                                    # "" | hidden
    deleted: bool = False
    edited_at: datetime | None = ts()
    reactions: dict = json_col({})
    created_at: datetime = created()


class PendingChange(SQLModel, table=True):
    """An edit, delete or reaction that arrived before the item it changes."""

    __table_args__ = (sa.Index("ix_pending_target", "channel_id", "target_external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id")
    target_external_id: str = Field(max_length=200)
    kind: str = Field(max_length=10)
    text: str = ""
    detail: dict = json_col({})
    created_at: datetime = created()


class ConversationEvent(SQLModel, table=True):
    """Append-only log: created, assigned, unassigned, customer_message, first_response,
    responded, resolved, reopened. Every metric is computed from it."""

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    kind: str = Field(max_length=20)
    at: datetime = created()
    user_id: int | None = Field(default=None, foreign_key="user.id")
    detail: dict = json_col({})


class Assignment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id")
    by_user_id: int | None = Field(default=None, foreign_key="user.id")   # None: the router
    reason: str
    at: datetime = created()


# -- delivery -----------------------------------------------------------------------------

class Receipt(SQLModel, table=True):
    """A raw webhook delivery, stored before we acknowledge it; replayable."""

    __table_args__ = (sa.Index("ix_receipt_pending", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=40)
    channel_id: int | None = Field(default=None, foreign_key="channel.id")
    received_at: datetime = created()
    headers: dict = json_col({})                            # redacted
    body: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    status: str = Field(default="pending", max_length=10)   # pending | processed | failed
    events: int = 0
    error: str = ""
    processed_at: datetime | None = ts()


class OutboxEntry(SQLModel, table=True):
    __table_args__ = (sa.Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", unique=True)
    channel_id: int = Field(foreign_key="channel.id")
    payload: dict = json_col({})
    status: str = Field(default="pending", max_length=10)   # pending | sending | sent | failed
    attempts: int = 0
    next_attempt_at: datetime = created()
    #: A claimed entry whose lease ran out (the process died) is claimed again: at-least-once.
    lease_until: datetime | None = ts()
    last_error: str = ""
    created_at: datetime = created()
    sent_at: datetime | None = ts()


# -- customer satisfaction (issue 5) --------------------------------------------------------

class CsatSurvey(SQLModel, table=True):
    """One satisfaction survey per conversation, sent in its private channel when it is resolved.

    The link's token is a bearer secret, so only its SHA-256 is kept; answering is one
    conditional UPDATE (unanswered and not expired), so a double tap cannot answer twice.
    """

    __table_args__ = (sa.Index("ix_csatsurvey_sent", "sent_at"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", unique=True)
    channel_id: int = Field(foreign_key="channel.id")
    team_id: int = Field(foreign_key="team.id")
    #: Who resolved the conversation: the answer is credited to them.
    agent_id: int | None = Field(default=None, foreign_key="user.id")
    message_id: int | None = Field(default=None, foreign_key="message.id")
    token_sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    sent_at: datetime = created()
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    answered_at: datetime | None = ts()
    rating: int | None = None                               # 1..5
    first_contact: bool | None = None                       # "did we solve it on the first contact?"
    self_help: bool | None = None                           # "did we show you how to solve it yourself?"
    comment: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False, server_default=""))
    details_at: datetime | None = ts()


# -- SLA policies and business hours (issue 5) --------------------------------------------

class ChannelSla(SQLModel, table=True):
    """Next-response and resolution targets of one channel and visibility (None: the default).

    The first-response target stays in Channel.sla_public_minutes / sla_private_minutes, which
    the channel page edits too: one place per number.
    """

    channel_id: int = Field(foreign_key="channel.id", primary_key=True)
    public: bool = Field(primary_key=True)
    next_response_minutes: int | None = None
    resolution_minutes: int | None = None


class TeamCalendar(SQLModel, table=True):
    """A team's business hours; without a row the team works 24/7 in Europe/Oslo."""

    team_id: int = Field(foreign_key="team.id", primary_key=True)
    tz: str = Field(default="Europe/Oslo", max_length=64)
    always_open: bool = True
    #: {"0": [["08:00", "16:00"]], ...}: weekday (Monday 0) to opening intervals, local wall time.
    hours: dict = json_col({})
    #: ISO dates ("2026-12-24") the team is closed.
    holidays: list = json_col([])
    #: Share of a target used after which a conversation counts as "breaching soon".
    at_risk_fraction: float = 0.8
    updated_at: datetime = created()


# -- working together: tags and notifications (issue 7) -------------------------------------

class ConversationTag(SQLModel, table=True):
    """A free-text label on a conversation; the tag text itself is the key (normalised by tags.py)."""

    __table_args__ = (sa.Index("ix_conversationtag_tag", "tag", "conversation_id"),)

    conversation_id: int = Field(foreign_key="conversation.id", primary_key=True)
    tag: str = Field(sa_column=sa.Column(sa.String(40), primary_key=True))
    by_user_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = created()


class Notification(SQLModel, table=True):
    """Something a person should look at: today an @mention in an internal note (the stored mention)."""

    __table_args__ = (sa.UniqueConstraint("message_id", "user_id", name="uq_notification_message_user"),
                      # The bell counts unread ones; the list shows the newest: one index each.
                      sa.Index("ix_notification_unread", "user_id", "read_at", "id"),
                      sa.Index("ix_notification_user", "user_id", "id"))

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id")
    kind: str = Field(default="mention", max_length=20)
    conversation_id: int = Field(foreign_key="conversation.id")
    message_id: int | None = Field(default=None, foreign_key="message.id")
    actor_user_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = created()
    read_at: datetime | None = ts()


# -- standard answers and help links (issue 7) -----------------------------------------------

class StandardAnswer(SQLModel, table=True):
    """A reusable reply: shared with a team (team_id) or personal to one agent (owner_id), never both.

    `tags` is a comma-separated lower-case list so that one LIKE over title, body and tags
    searches all three on SQLite and PostgreSQL alike.
    """

    __table_args__ = (sa.Index("ix_standardanswer_team", "team_id", "title"),
                      sa.Index("ix_standardanswer_owner", "owner_id", "title"))

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    body: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    tags: str = Field(default="", sa_column=sa.Column(sa.String(500), nullable=False, server_default=""))
    #: A language code ("nb", "sv", "en") or "" for any.
    language: str = Field(default="", sa_column=sa.Column(sa.String(16), nullable=False, server_default=""))
    team_id: int | None = Field(default=None, foreign_key="team.id")
    owner_id: int | None = Field(default=None, foreign_key="user.id")
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = created()
    updated_at: datetime = created()


class HelpArticle(SQLModel, table=True):
    """One page of the brand's FAQ / knowledge base; archived, never deleted, so links already
    sent to customers keep redirecting."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    url: str = Field(sa_column=sa.Column(sa.String(2000), nullable=False))
    active: bool = Field(default=True, sa_column=sa.Column(sa.Boolean(), nullable=False, server_default=sa.true()))
    created_at: datetime = created()
    updated_at: datetime = created()


class HelpLink(SQLModel, table=True):
    """The short redirect code of one help article in one conversation: a click on it says which
    article, conversation, channel and agent guided a customer to self-help."""

    __table_args__ = (sa.UniqueConstraint("article_id", "conversation_id", name="uq_helplink_article_conversation"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, unique=True))
    article_id: int = Field(foreign_key="helparticle.id")
    conversation_id: int = Field(foreign_key="conversation.id")
    channel_id: int = Field(foreign_key="channel.id")
    #: The agent who first put the link into a reply.
    agent_id: int | None = Field(default=None, foreign_key="user.id")
    #: The first reply that carried the link; NULL while it has only been inserted into a draft.
    message_id: int | None = Field(default=None, foreign_key="message.id")
    clicks: int = Field(default=0, sa_column=sa.Column(sa.Integer(), nullable=False, server_default="0"))
    first_click_at: datetime | None = ts()
    last_click_at: datetime | None = ts()
    created_at: datetime = created()


# -- administration -----------------------------------------------------------------------

class AuditEntry(SQLModel, table=True):
    """Who changed what, when, with the values before and after; append-only."""

    __table_args__ = (sa.Index("ix_audit_actor", "actor_user_id", "id"),
                      sa.Index("ix_audit_action", "action", "id"))

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = created()
    actor_user_id: int | None = Field(default=None, foreign_key="user.id")   # None: the system
    action: str = Field(max_length=40)                      # user.create, user.role, password.reset, ...
    target: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False, server_default=""))
    before: dict | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    after: dict | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins per username (known or not): one small row each, not a log to prune."""

    username: str = Field(sa_column=sa.Column(sa.String(100), primary_key=True))
    failures: int = 0
    window_started_at: datetime = created()
    locked_until: datetime | None = ts()


# -- several processes (issue 8) ------------------------------------------------------------

class JobRun(SQLModel, table=True):
    """When a periodic job (SLA tick, receipts sweep, ...) last started in any process.

    Claimed with one conditional upsert (socialcrm.coordination.claim_period), so of several
    server processes exactly one runs each period; the others see the row and skip.
    """

    name: str = Field(sa_column=sa.Column(sa.String(100), primary_key=True))
    last_run_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    #: "host:pid" of the process that ran it last, for the operator reading the table.
    run_by: str = Field(default="", sa_column=sa.Column(sa.String(200), nullable=False, server_default=""))


# -- one customer: merge suggestions (issue 7) ------------------------------------------------

class MergeSuggestion(SQLModel, table=True):
    """Two contacts that look like one person, and why; only an agent merges them (socialcrm.merge).

    One row per pair (the older contact keeps, the newer joins it), so a dismissed pair is never
    suggested again. `moved` records the identities and conversations an accept moved: undo
    moves exactly those back.
    """

    __table_args__ = (
        sa.UniqueConstraint("keep_contact_id", "merge_contact_id", name="uq_merge_pair"),
        sa.Index("ix_merge_keep", "keep_contact_id", "status"),
        sa.Index("ix_merge_other", "merge_contact_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    keep_contact_id: int = Field(foreign_key="contact.id")
    merge_contact_id: int = Field(foreign_key="contact.id")
    kind: str = Field(max_length=20)                        # email | phone | handle | name_avatar
    reason: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    status: str = Field(default="open", max_length=10)      # open | accepted | dismissed
    moved: dict = json_col({})
    created_at: datetime = created()
    decided_at: datetime | None = ts()
    decided_by: int | None = Field(default=None, foreign_key="user.id")


class ContactPoint(SQLModel, table=True):
    """An e-mail address or phone number a customer wrote to us, normalised, per identity."""

    __table_args__ = (sa.UniqueConstraint("kind", "value", "identity_id", name="uq_contact_point"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=10)                        # email | phone
    value: str = Field(max_length=320)
    identity_id: int = Field(foreign_key="identity.id", index=True)
    message_id: int = Field(foreign_key="message.id")


class MergeScan(SQLModel, table=True):
    """How far merge detection has read ('messages', 'identities'): each run reads only what is new."""

    name: str = Field(sa_column=sa.Column(sa.String(20), primary_key=True))
    last_id: int = 0


metadata = SQLModel.metadata
