"""THE connector contract: what every platform integration implements and nothing more.

A connector is a class registered under the entry-point group ``socialcrm.connectors``.
It is framework-free: it never imports aiohttp, the database or the scheduler. It is given
its validated settings and one shared ``httpx.AsyncClient`` in the constructor, so that
every test can mock the platform with respx.

Webhooks are handled by three pure functions (no I/O):

* ``handshake(req)`` answers a verification request (Meta ``hub.challenge``, X CRC) or
  returns None when the request is not one;
* ``verify(req)`` raises ``InvalidSignature`` unless the raw body is signed by the platform;
* ``parse(req)`` returns ``list[NormalizedEvent]`` or raises ``MalformedPayload`` /
  ``UnsupportedEvent``.

Polling is ``poll(cursor) -> (events, next_cursor)``; the core stores the cursor only after
the events are committed. Sending is ``send(reply) -> Sent`` raising the errors of
``socialcrm.errors``. Capabilities are declared, and enforced by the core before ``send``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import BaseModel

from socialcrm.errors import (  # noqa: F401  (re-exported: the contract in one import)
    AuthFailed,
    ConnectorError,
    InvalidSignature,
    MalformedPayload,
    PermanentError,
    RateLimited,
    SendError,
    TransientError,
    UnsupportedEvent,
    WebhookError,
)

EventKind = Literal["message", "comment", "mention", "edit", "delete", "reaction", "echo", "status", "read"]
#: Kinds that create a message in a conversation; the others change an existing one.
ITEM_KINDS: frozenset[str] = frozenset({"message", "comment", "mention", "echo"})


@dataclass(frozen=True)
class Capabilities:
    """What a channel can do; the core checks replies against this before queueing them."""

    webhook: bool = False                       # platform pushes events to us
    poll: bool = False                          # we fetch events with poll(cursor)
    public_replies: bool = False                # answer a public item in public
    private_replies: bool = False               # answer a private conversation privately
    private_reply_to_public: bool = False       # answer a public comment in a DM (Meta)
    max_length_public: int | None = None        # as counted by Connector.text_length
    max_length_private: int | None = None
    reply_window: timedelta | None = None       # private replies only within this of the customer's last message
    #: After reply_window, a reply written by a person may still go this long after the customer's
    #: last message, marked `outside_window` so the connector tags it (Meta HUMAN_AGENT: 7 days).
    human_agent_window: timedelta | None = None
    #: After reply_window, only an approved template may be sent (WhatsApp).
    templates_outside_window: bool = False
    #: How long after a public comment one private reply to it may be sent (Meta: 7 days, once).
    private_reply_window: timedelta | None = None
    edits: bool = False
    deletes: bool = False
    attachments: bool = False
    moderation: frozenset[str] = frozenset()    # of "hide", "unhide", "delete"
    #: Sends per second the platform allows one account by default (None: none documented); the
    #: outbox paces below it. A channel setting `send_rate_per_second` overrides it.
    send_rate_per_second: float | None = None

    def max_length(self, public: bool) -> int | None:
        return self.max_length_public if public else self.max_length_private


@dataclass(frozen=True)
class WebhookRequest:
    """The part of an HTTP request a connector may look at: raw bytes, never a parsed body."""

    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes = b""

    @classmethod
    def build(cls, method: str, path: str = "/", headers: Mapping[str, str] | None = None,
              query: Mapping[str, str] | None = None, body: bytes = b"") -> WebhookRequest:
        """Build with case-insensitive headers, as HTTP has them."""
        return cls(method.upper(), path, CIMultiDictProxy(CIMultiDict(headers or {})), dict(query or {}), body)


@dataclass(frozen=True)
class HandshakeResponse:
    status: int
    body: str
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Author:
    external_id: str
    name: str | None = None
    handle: str | None = None
    avatar_url: str | None = None
    followers: int | None = None
    is_self: bool = False                       # the brand's own account (echoes)


@dataclass(frozen=True)
class Attachment:
    kind: str                                   # image, video, audio, file, sticker, location, ...
    url: str | None = None
    mime_type: str | None = None
    name: str | None = None


@dataclass
class NormalizedEvent:
    """One thing that happened on a platform, in the same shape for every connector (DESIGN §4)."""

    kind: str
    public: bool
    external_id: str
    thread_external_id: str
    author: Author
    created_at: datetime
    text: str = ""
    in_reply_to_external_id: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    raw: Any = None
    #: The item an edit, delete, reaction, status or read is about.
    target_external_id: str | None = None
    #: Kind-specific facts: {"status": "failed", "error": ...}, {"emoji": "👍", "action": "react"},
    #: {"moderation": "hidden"} on an edit, {"reachable": False} on a status about the author.
    #: On a new item, {"language": "nb"} when the platform's payload names a language: always the
    #: lowercase primary subtag ("en-US"/"en_US" -> "en"), made by socialcrm.payload.language_code;
    #: absent when the platform says nothing (ingest fills Conversation.language from it).
    detail: dict[str, Any] = field(default_factory=dict)
    #: The platform account the event was delivered for (Meta page id, phone number id), used to
    #: route one app-wide callback to the right channel. None when the URL already names it.
    account_id: str | None = None


@dataclass(frozen=True)
class OutboundReply:
    """A reply the core has validated and wants delivered."""

    text: str
    public: bool
    thread_external_id: str
    recipient_external_id: str | None = None    # the customer's id on the platform
    in_reply_to_external_id: str | None = None  # the item this answers (comment, tweet, message)
    idempotency_key: str | None = None          # stable across retries of the same reply
    human_agent: bool = True                    # Meta HUMAN_AGENT tag is for people, not automation
    #: "reply": in the conversation's own visibility; "private_reply": a DM answering the public
    #: item `in_reply_to_external_id` (Meta comment private replies); "template": `template` only.
    mode: str = "reply"
    #: Past reply_window but inside human_agent_window: the connector must tag it (HUMAN_AGENT).
    outside_window: bool = False
    template: dict[str, Any] | None = None      # {"name", "language", "parameters": [...]}
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    external_id: str
    sent_at: datetime


class Connector:
    """Base class of every connector; subclasses override what their platform supports."""

    key: ClassVar[str]
    display_name: ClassVar[str]
    Settings: ClassVar[type[BaseModel]] = BaseModel
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, settings: BaseModel, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    @classmethod
    def from_settings(cls, values: Mapping[str, Any], http: httpx.AsyncClient) -> Connector:
        """Validate raw settings (pydantic raises ValidationError on bad ones) and build."""
        return cls(cls.Settings.model_validate(dict(values)), http)

    def account_id(self) -> str | None:
        """The platform account this channel is (page id, bot id); unique per connector."""
        return None

    def text_length(self, text: str, public: bool = True) -> int:
        """Length as the platform counts it for a public post or a private message (X weighs URLs
        and CJK; Bluesky counts graphemes; Instagram counts DM bytes)."""
        return len(text)

    def allowed_templates(self) -> list[dict[str, Any]]:
        """Approved templates ({"name", "language", "parameters": count}) an agent may send when
        only templates are allowed (capabilities.templates_outside_window)."""
        return []

    # -- webhooks (pure) -------------------------------------------------------------
    def handshake(self, req: WebhookRequest) -> HandshakeResponse | None:
        return None

    def verify(self, req: WebhookRequest) -> None:
        raise InvalidSignature(f"{self.key} does not accept webhooks")

    def parse(self, req: WebhookRequest) -> list[NormalizedEvent]:
        raise UnsupportedEvent(f"{self.key} does not accept webhooks")

    # -- polling and sending (I/O through self.http) ---------------------------------
    async def poll(self, cursor: str | None) -> tuple[list[NormalizedEvent], str | None]:
        raise NotImplementedError(f"{self.key} does not poll")

    async def send(self, reply: OutboundReply) -> Sent:
        raise PermanentError(f"{self.display_name} cannot send replies")

    async def hydrate(self, events: list[NormalizedEvent]) -> list[NormalizedEvent]:
        """Fetch what a webhook left out (Instagram mentions carry only ids). Runs after the
        delivery is stored and before ingest; a SendError leaves the receipt pending, retried."""
        return events

    async def check(self) -> None:
        """Test the credentials; raise AuthFailed or TransientError. Default: nothing to test."""
        return None

    async def platform_health(self) -> dict[str, Any]:
        """What the platform says about this channel's access: token expiry, subscription.

        Optional keys: "token_valid" (bool), "token_expires_at" (aware datetime, None: never),
        "scopes" (list), "subscribed" (bool, None: not known), "subscribed_fields" (list).
        Raises the SendError tree like any call. Default: the platform says nothing ({})."""
        return {}

    async def moderate(self, action: str, external_id: str) -> None:
        """Hide, unhide or delete a public item on the platform (declared in capabilities.moderation)."""
        raise PermanentError(f"{self.display_name} does not support {action}")
