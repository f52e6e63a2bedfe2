"""The simulated platform: a connector like any other, so the demo and the tests use the real path."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from socialcrm.connector import (
    Capabilities,
    Connector,
    HandshakeResponse,
    InvalidSignature,
    MalformedPayload,
    NormalizedEvent,
    OutboundReply,
    PermanentError,
    Sent,
    TransientError,
    WebhookRequest,
)

from . import api
from .normalize import build_time, parse_body, parse_items, parse_webhook_items

SIGNATURE_HEADER = "X-Simulator-Signature"
TOKEN_HEADER = "X-Simulator-Token"


class SimulatorSettings(BaseModel):
    account_id: str = Field(min_length=1, description="The brand account on the simulated platform")
    webhook_secret: SecretStr = Field(min_length=1, description="Signs webhook deliveries (HMAC-SHA256)")
    api_token: SecretStr = Field(min_length=1, description="Bearer token for the platform API")
    api_base_url: str = Field("http://127.0.0.1:8090", description="Where the platform API listens")


class SimulatorConnector(Connector):
    """A fake social platform with webhooks, polling, public and private replies."""

    key = "simulator"
    display_name = "Simulated platform"
    Settings = SimulatorSettings
    capabilities = Capabilities(
        webhook=True, poll=True, public_replies=True, private_replies=True,
        private_reply_to_public=False, max_length_public=500, max_length_private=2000,
        reply_window=timedelta(hours=24), edits=True, deletes=True,
        moderation=frozenset({"hide", "delete"}),
    )
    settings: SimulatorSettings

    def account_id(self) -> str:
        return self.settings.account_id

    # -- webhooks -------------------------------------------------------------------
    def handshake(self, req: WebhookRequest) -> HandshakeResponse | None:
        """The platform proves the URL is ours by echoing `challenge` when it sends our secret."""
        challenge = req.query.get("challenge")
        if req.method != "GET" or challenge is None:
            return None
        if not _same(req.headers.get(TOKEN_HEADER, ""), self._secret().decode()):
            return HandshakeResponse(403, "verify token mismatch")
        return HandshakeResponse(200, challenge)

    def verify(self, req: WebhookRequest) -> None:
        """HMAC over the raw bytes: re-serialised JSON would not match what the platform signed."""
        given = req.headers.get(SIGNATURE_HEADER)
        if not given:
            raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
        expected = "sha256=" + hmac.new(self._secret(), req.body, hashlib.sha256).hexdigest()
        if not _same(given, expected):
            raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the body")

    def parse(self, req: WebhookRequest) -> list[NormalizedEvent]:
        account_id, items = parse_body(req.body)
        return parse_webhook_items(items, account_id)

    # -- platform API ---------------------------------------------------------------
    async def poll(self, cursor: str | None) -> tuple[list[NormalizedEvent], str | None]:
        page = await self._call("GET", api.EVENTS_PATH, params=api.events_params(cursor))
        items = _page_items(page)
        try:
            events = parse_items(items, page.get("account_id") or self.settings.account_id)
        except MalformedPayload as exc:  # the poller speaks SendError: it retries this page later
            raise TransientError(f"{api.PLATFORM} sent an unreadable page: {exc}") from exc
        next_cursor = page.get("next")
        return events, str(next_cursor) if next_cursor not in (None, "") else cursor

    async def send(self, reply: OutboundReply) -> Sent:
        body = {
            "text": reply.text, "public": reply.public, "thread_id": reply.thread_external_id,
            "in_reply_to": reply.in_reply_to_external_id, "recipient_id": reply.recipient_external_id,
        }
        headers = {"Idempotency-Key": reply.idempotency_key} if reply.idempotency_key else {}
        return _sent(await self._call("POST", api.REPLIES_PATH, json=body, headers=headers))

    async def check(self) -> None:
        await self._call("GET", api.ME_PATH)

    async def moderate(self, action: str, external_id: str) -> None:
        if action not in self.capabilities.moderation:
            raise PermanentError(f"{self.display_name} cannot {action} items")
        await self._call("POST", api.item_action_path(external_id, action))

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        token = self.settings.api_token.get_secret_value()
        return await api.call(self.http, method, self.settings.api_base_url, path, token, **kwargs)

    def _secret(self) -> bytes:
        return self.settings.webhook_secret.get_secret_value().encode()


def _sent(answer: Any) -> Sent:
    """A reply that went out but whose answer we cannot read is retried; the key makes that safe."""
    if isinstance(answer, dict) and isinstance(answer.get("id"), str) and type(answer.get("created_at")) is int:
        return Sent(answer["id"], build_time(answer["created_at"]))
    raise TransientError(f"{api.PLATFORM} accepted the reply but answered {answer!r:.80}")


def _page_items(page: Any) -> list[Any]:
    if not isinstance(page, dict) or not isinstance(page.get("events"), list):
        raise TransientError(f"{api.PLATFORM} sent a page without an events list")
    return page["events"]


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that tolerates non-ASCII header values."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))
