"""Mastodon (any Mastodon-compatible instance): poll notifications, reply with statuses."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator

from socialcrm.connector import (
    AuthFailed,
    Capabilities,
    Connector,
    MalformedPayload,
    NormalizedEvent,
    OutboundReply,
    PermanentError,
    Sent,
    TransientError,
)

from . import api
from .normalize import is_newer, newest_id, parse_notifications, parse_time
from .reply import customer_acct, reply_form, reply_visibility, with_mention
from .text import DEFAULT_URL_LENGTH, status_length

DEFAULT_MAX_CHARACTERS = 500    # Mastodon's default; each instance may set its own
MAX_PAGES = 10                  # per poll; the rest comes next poll, nothing is skipped


class MastodonSettings(BaseModel):
    api_base_url: str = Field(description="The instance, e.g. https://mastodon.social")
    access_token: SecretStr = Field(min_length=1, description="Access token of the brand account's application")
    account_id: str | None = Field(None, description="The brand's account id; read from the token when empty")

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or len(value) < 9:
            raise ValueError("must be the instance's URL, starting with https://")
        return value.rstrip("/")

    @field_validator("account_id")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MastodonConnector(Connector):
    """Mentions, private mentions, edits and stars from a Mastodon account; replies in thread."""

    key = "mastodon"
    display_name = "Mastodon"
    Settings = MastodonSettings
    capabilities = Capabilities(
        webhook=False,                  # Mastodon's webhooks are admin-level server events only
        poll=True,
        public_replies=True, private_replies=True, private_reply_to_public=False,
        # The default; the instance's own limit comes from instance_limit() (see README).
        max_length_public=DEFAULT_MAX_CHARACTERS, max_length_private=DEFAULT_MAX_CHARACTERS,
        edits=True,                     # `update` notifications of statuses that concern us
        deletes=False,                  # only the user stream says so, and it is not wired yet
    )
    settings: MastodonSettings

    def __init__(self, settings: BaseModel, http: httpx.AsyncClient) -> None:
        super().__init__(settings, http)
        self.clock: Callable[[], datetime] = _utcnow     # X-RateLimit-Reset is a time; tests fix "now"
        self._own_id: str | None = self.settings.account_id
        self._max_characters: int | None = None
        self._url_length = DEFAULT_URL_LENGTH

    def account_id(self) -> str | None:
        return self._own_id

    def text_length(self, text: str, public: bool = True) -> int:
        """URLs count as the instance's reserved length (23), mentions without their domain."""
        return status_length(text, self._url_length)

    # -- polling ------------------------------------------------------------------------
    async def poll(self, cursor: str | None) -> tuple[list[NormalizedEvent], str | None]:
        """Notifications newer than the cursor, oldest first; the cursor is the newest id seen."""
        own = await self._account()
        params: api.Params | None = api.notifications_params(cursor)
        fresh: list[Any] = []
        newest = cursor
        for _ in range(MAX_PAGES):
            response = await self._call("GET", api.NOTIFICATIONS_PATH, params=params)
            # Each page must be past everything before it: a replayed page ends the loop.
            page = [item for item in api.decode(response, list) if is_newer(item, newest)]
            if not page:
                break
            fresh.extend(page)
            newest = newest_id(item["id"] for item in page)
            # The first poll takes the newest page only; afterwards min_id pages forward in time.
            params = api.prev_page_params(response) if cursor is not None else None
            if params is None:
                break
        return parse_notifications(fresh, own), newest

    # -- sending ------------------------------------------------------------------------
    async def send(self, reply: OutboundReply) -> Sent:
        """POST /api/v1/statuses in reply to the customer's status, at its visibility or less."""
        status = await self._replied_status(reply.in_reply_to_external_id)
        visibility = reply_visibility(status.get("visibility") if status else None, reply.public)
        acct = customer_acct(status)
        if acct is None and visibility == "direct":
            raise PermanentError("A private Mastodon reply must answer one of the customer's posts.")
        text = with_mention(reply.text, acct) if acct else reply.text
        limit, length = await self.instance_limit(), self.text_length(text)
        if length > limit:
            raise PermanentError(f"Too long for this Mastodon instance: {length} of at most {limit} "
                                 f"characters, counting the @mention of the customer.")
        headers = {"Idempotency-Key": reply.idempotency_key} if reply.idempotency_key else {}
        form = reply_form(text, visibility, reply.in_reply_to_external_id)
        with _status_gone():
            response = await self._call("POST", api.STATUSES_PATH, data=form, headers=headers)
        return _sent(api.decode(response, dict))

    async def instance_limit(self) -> int:
        """configuration.statuses.max_characters of GET /api/v2/instance (500 when not said); cached."""
        if self._max_characters is None:
            try:
                instance = api.decode(await self._call("GET", api.INSTANCE_PATH), dict)
            except PermanentError as exc:
                if exc.code != 404:     # a server older than Mastodon 4.0 has no v2 instance
                    raise
                instance = {}
            configuration = instance.get("configuration")
            statuses = configuration.get("statuses") if isinstance(configuration, dict) else None
            statuses = statuses if isinstance(statuses, dict) else {}
            self._url_length = _positive(statuses.get("characters_reserved_per_url"), DEFAULT_URL_LENGTH)
            self._max_characters = _positive(statuses.get("max_characters"), DEFAULT_MAX_CHARACTERS)
        return self._max_characters

    async def check(self) -> None:
        """The token works and belongs to the configured account (if one is configured)."""
        await self._verify()

    # -- helpers ------------------------------------------------------------------------
    async def _account(self) -> str:
        return self._own_id or await self._verify()

    async def _verify(self) -> str:
        """GET verify_credentials (scope read:accounts or profile): whose token this is."""
        account = api.decode(await self._call("GET", api.VERIFY_CREDENTIALS_PATH), dict)
        found = account.get("id")
        if not isinstance(found, str) or not found:
            raise TransientError(f"{api.PLATFORM} answered verify_credentials without an account id")
        if self.settings.account_id and found != self.settings.account_id:
            raise AuthFailed(f"The access token belongs to @{account.get('acct')} (account {found}), "
                             f"not to the configured account {self.settings.account_id}.")
        self._own_id = found
        return found

    async def _replied_status(self, status_id: str | None) -> dict[str, Any] | None:
        """The customer's status: its visibility and author decide how we answer."""
        if not status_id:
            return None
        with _status_gone():
            return api.decode(await self._call("GET", api.status_path(status_id)), dict)

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        token = self.settings.access_token.get_secret_value()
        return await api.call(self.http, method, self.settings.api_base_url, path, token, self.clock(), **kwargs)


@contextlib.contextmanager
def _status_gone() -> Iterator[None]:
    """A 404 about the status answered means it was deleted or we may no longer see it."""
    try:
        yield
    except PermanentError as exc:
        if exc.code != 404:
            raise
        raise PermanentError(f"The post this answers was deleted or is no longer visible to the brand "
                             f"account ({exc}).", code=404) from exc


def _sent(status: dict[str, Any]) -> Sent:
    """A status that went out but whose answer we cannot read is retried; the Idempotency-Key makes that safe."""
    try:
        if isinstance(status.get("id"), str) and status["id"]:
            return Sent(status["id"], parse_time(status, "created_at"))
    except MalformedPayload:
        pass
    raise TransientError(f"{api.PLATFORM} accepted the reply but answered {str(status)[:80]!r}")


def _positive(value: Any, default: int) -> int:
    return value if type(value) is int and value > 0 else default
