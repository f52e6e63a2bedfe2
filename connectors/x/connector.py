"""X (Twitter): Account Activity webhooks, mentions polling, public replies and DMs (README.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator

from socialcrm.connector import (
    AuthFailed,
    Capabilities,
    Connector,
    HandshakeResponse,
    NormalizedEvent,
    OutboundReply,
    PermanentError,
    Sent,
    TransientError,
    WebhookRequest,
)

from . import api
from .length import MAX_WEIGHTED_LENGTH, weighted_length
from .mentions import poll_mentions
from .normalize import parse_body, parse_delivery
from .webhook import crc_response, verify_signature

DM_MAX_LENGTH = 10_000
_DM_THREAD = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


class XSettings(BaseModel):
    user_id: str = Field(pattern=r"^[0-9]{1,20}$", description="The brand account's numeric X user id")
    consumer_secret: SecretStr | None = Field(None, description="App API key secret: CRC answers and webhook signatures")
    bearer_token: SecretStr | None = Field(None, description="App-only bearer token: polls mentions")
    user_access_token: SecretStr | None = Field(
        None, description="OAuth 2.0 user-context token of the brand account (tweet.write, dm.write): replies")
    api_base_url: str = Field("https://api.x.com", description="X API host")

    @model_validator(mode="after")
    def _can_do_something(self) -> XSettings:
        if not (self.consumer_secret or self.bearer_token or self.user_access_token):
            raise ValueError("set consumer_secret (webhooks), bearer_token (polling) or user_access_token (replies)")
        return self


class XConnector(Connector):
    """X: mentions and replies in public, DMs in private; polling on paid tiers, webhooks with AAA."""

    key = "x"
    display_name = "X"
    Settings = XSettings
    capabilities = Capabilities(
        webhook=True,                            # Account Activity API, where the app has it
        poll=True,                               # mentions timeline, every paid tier
        public_replies=True,                     # POST /2/tweets with reply.in_reply_to_tweet_id
        private_replies=True,                    # POST /2/dm_conversations/with/:id/messages
        max_length_public=MAX_WEIGHTED_LENGTH,   # 280, weighted as X counts (text_length)
        max_length_private=DM_MAX_LENGTH,        # 10,000 (also weighted: conservative)
        reply_window=None,                       # X documents no DM reply window
        deletes=True,                            # tweet_delete_events
    )
    settings: XSettings
    #: Injected in tests; rate-limit waits are computed against it.
    clock: Callable[[], datetime] = staticmethod(lambda: datetime.now(UTC))

    def account_id(self) -> str:
        return self.settings.user_id

    def text_length(self, text: str, public: bool = True) -> int:
        return weighted_length(text)

    # -- webhooks ---------------------------------------------------------------------
    def handshake(self, req: WebhookRequest) -> HandshakeResponse | None:
        return crc_response(req, _secret(self.settings.consumer_secret))

    def verify(self, req: WebhookRequest) -> None:
        verify_signature(req, _secret(self.settings.consumer_secret))

    def parse(self, req: WebhookRequest) -> list[NormalizedEvent]:
        delivery, data = parse_body(req.body)
        return parse_delivery(data, delivery)

    # -- platform API -----------------------------------------------------------------
    async def poll(self, cursor: str | None) -> tuple[list[NormalizedEvent], str | None]:
        token = self._token(self.settings.bearer_token, "bearer_token", "poll mentions")
        path = api.url(self.settings.api_base_url, api.MENTIONS_PATH, user_id=self.settings.user_id)

        async def fetch(params: dict[str, str]) -> Any:
            return await api.call(self.http, "GET", path, token, now=self.clock(), params=params)

        return await poll_mentions(fetch, cursor, self.settings.user_id)

    async def send(self, reply: OutboundReply) -> Sent:
        if reply.mode != "reply":
            raise PermanentError(f"X cannot send a {reply.mode.replace('_', ' ')}; answer in the conversation itself.")
        token = self._token(self.settings.user_access_token, "user_access_token", "post replies")
        if reply.public:
            answer = await self._post(api.TWEETS_PATH, token, _tweet_body(reply), {})
            return Sent(_created_id(answer, "id"), self.clock())
        participant = self._participant(reply)
        answer = await self._post(api.DM_PATH, token, {"text": reply.text}, {"participant_id": participant})
        return Sent(_created_id(answer, "dm_event_id"), self.clock())

    async def check(self) -> None:
        """The user token must belong to user_id; without one, the bearer must read user_id."""
        base = self.settings.api_base_url
        if self.settings.user_access_token:
            me = await api.call(self.http, "GET", api.url(base, api.ME_PATH),
                                self.settings.user_access_token.get_secret_value(), now=self.clock())
            found = me.get("data", {}).get("id") if isinstance(me, dict) and isinstance(me.get("data"), dict) else None
            if found != self.settings.user_id:
                raise AuthFailed(f"the user access token belongs to X user {found}, not {self.settings.user_id}")
        elif self.settings.bearer_token:
            await api.call(self.http, "GET", api.url(base, api.USER_PATH, user_id=self.settings.user_id),
                           self.settings.bearer_token.get_secret_value(), now=self.clock())

    async def _post(self, path: str, token: str, body: dict[str, Any], ids: dict[str, str]) -> Any:
        return await api.call(self.http, "POST", api.url(self.settings.api_base_url, path, **ids), token,
                              now=self.clock(), json=body)

    def _participant(self, reply: OutboundReply) -> str:
        """The customer: recipient_external_id, else the other id of the `<low>-<high>` thread."""
        if reply.recipient_external_id:
            return reply.recipient_external_id
        match = _DM_THREAD.fullmatch(reply.thread_external_id)
        others = [i for i in (match.groups() if match else ()) if i != self.settings.user_id]
        if len(others) != 1:
            raise PermanentError("X needs the customer's user id to send a direct message.")
        return others[0]

    @staticmethod
    def _token(secret: SecretStr | None, name: str, action: str) -> str:
        if secret is None:
            raise AuthFailed(f"this X channel has no {name}: it cannot {action} (see the channel settings)")
        return secret.get_secret_value()


def _tweet_body(reply: OutboundReply) -> dict[str, Any]:
    if not reply.in_reply_to_external_id:
        raise PermanentError("X needs the post this reply answers (in_reply_to); nothing was posted.")
    return {"text": reply.text, "reply": {"in_reply_to_tweet_id": reply.in_reply_to_external_id}}


def _created_id(answer: Any, key: str) -> str:
    """`data.<key>` of a 2xx answer; a refusal inside a 2xx is permanent, anything else unreadable."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if isinstance(data, dict) and isinstance(data.get(key), str) and data[key]:
        return data[key]
    reason = api.error_text(answer)
    if reason:
        raise PermanentError(f"X refused: {reason}")
    raise TransientError(f"X accepted the request but answered {answer!r:.80}")


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
