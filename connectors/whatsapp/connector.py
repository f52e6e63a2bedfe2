"""WhatsApp Cloud API: customer messages in by webhook, replies and templates out (see README.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

from connectors.meta_common import GraphAPI, handshake, verify_signature
from connectors.meta_common.graph import platform_health
from socialcrm.connector import (
    Capabilities,
    Connector,
    HandshakeResponse,
    NormalizedEvent,
    OutboundReply,
    PermanentError,
    Sent,
    WebhookRequest,
)

from . import api
from .normalize import parse_body

DEFAULT_VERSION = "v26.0"


class TemplateSpec(BaseModel):
    """An approved message template this channel may send when the 24-hour window is closed."""

    name: str = Field(min_length=1)
    language: str = Field(min_length=1, description="e.g. nb, sv, en_US: as approved")
    parameters: int = Field(0, ge=0, description="how many body parameters ({{1}}, {{2}}, ...) it takes")


class WhatsAppSettings(BaseModel):
    app_secret: SecretStr = Field(min_length=1, description="Meta app secret: checks X-Hub-Signature-256")
    verify_token: SecretStr = Field(min_length=1, description="Answers Meta's webhook verification request")
    access_token: SecretStr = Field(min_length=1, description="System-user token with whatsapp_business_messaging")
    phone_number_id: str = Field(pattern=r"^\d+$", description="The business phone number's id (not the number)")
    business_account_id: str | None = Field(None, pattern=r"^\d+$", description="WhatsApp Business Account id")
    api_version: str = Field(DEFAULT_VERSION, pattern=r"^v\d+\.\d+$", description="Graph API version")
    api_base_url: str = Field("https://graph.facebook.com", description="Graph API host (tests and proxies)")
    templates: list[TemplateSpec] = Field(default_factory=list, description="Approved templates, a JSON list")
    send_rate_per_second: float | None = Field(
        None, gt=0, le=1000, description="Messages per second this number may send: empty for Meta's default "
        "of 80; 20 for a number also used in the WhatsApp Business app; 1000 after Meta's upgrade")

    @field_validator("business_account_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("templates", mode="before")
    @classmethod
    def _templates_from_json(cls, value: Any) -> Any:
        """The admin form and the CLI give a JSON string; an empty one means none."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return []
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError("templates must be a JSON list of {name, language, parameters}") from None


class WhatsAppConnector(Connector):
    """One WhatsApp business phone number on the Cloud API."""

    key = "whatsapp"
    display_name = "WhatsApp"
    Settings = WhatsAppSettings
    capabilities = Capabilities(
        webhook=True,                               # Meta pushes messages and statuses; nothing to poll
        private_replies=True,                       # every WhatsApp conversation is private
        max_length_private=4096,                    # text message body limit
        reply_window=timedelta(hours=24),           # customer service window from their last message
        templates_outside_window=True,              # after it, only an approved template
        send_rate_per_second=80,                    # default throughput per business number (130429 beyond)
    )
    settings: WhatsAppSettings

    def account_id(self) -> str:
        return self.settings.phone_number_id

    def allowed_templates(self) -> list[dict[str, Any]]:
        """The templates an agent may pick outside the window (for the composer)."""
        return [spec.model_dump() for spec in self.settings.templates]

    # -- webhooks -------------------------------------------------------------------
    def handshake(self, req: WebhookRequest) -> HandshakeResponse | None:
        return handshake(req, self.settings.verify_token.get_secret_value())

    def verify(self, req: WebhookRequest) -> None:
        verify_signature(req, self.settings.app_secret.get_secret_value())

    def parse(self, req: WebhookRequest) -> list[NormalizedEvent]:
        return parse_body(req.body)

    # -- Cloud API ------------------------------------------------------------------
    async def send(self, reply: OutboundReply) -> Sent:
        recipient = reply.recipient_external_id or reply.thread_external_id
        if reply.mode == "template":
            name, language, parameters = self._template(reply.template)
            body = api.template_body(recipient, name, language, parameters)
        elif reply.mode == "reply" and not reply.public:
            body = api.text_body(recipient, reply.text, reply.in_reply_to_external_id)
        else:
            raise PermanentError(f"{self.display_name} has only private conversations: cannot send this reply")
        answer = await self._call("POST", api.MESSAGES_PATH, json=body)
        return Sent(api.sent_message_id(answer), datetime.now(UTC))

    async def check(self) -> None:
        """The token can read this phone number (GET /{phone-number-id})."""
        await self._call("GET", api.PHONE_NUMBER_PATH)

    async def platform_health(self) -> dict[str, Any]:
        """Token validity and expiry; the WABA's subscribed apps when `business_account_id` is set."""
        s = self.settings
        graph = GraphAPI(self.http, s.api_base_url, s.api_version, s.access_token.get_secret_value(), api.PLATFORM)
        waba = s.business_account_id
        return await platform_health(graph, f"{waba}/subscribed_apps" if waba else None)

    def _template(self, template: dict[str, Any] | None) -> tuple[str, str, list[str]]:
        """The chosen template, checked against the channel's approved list before Meta sees it."""
        template = template or {}
        name, language = template.get("name"), template.get("language")
        parameters = template.get("parameters") or []
        spec = next((t for t in self.settings.templates if (t.name, t.language) == (name, language)), None)
        if spec is None:
            raise PermanentError(f"The template {name!r} ({language}) is not in this channel's approved "
                                 f"templates; an admin can add it in the channel settings.")
        if not isinstance(parameters, list) or not all(isinstance(p, str) and p.strip() for p in parameters):
            raise PermanentError(f"The template {name!r} needs its parameters as non-empty texts.")
        if len(parameters) != spec.parameters:
            raise PermanentError(f"The template {name!r} takes {spec.parameters} parameters, "
                                 f"not {len(parameters)}.")
        return spec.name, spec.language, parameters

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        s = self.settings
        url = s.api_base_url.rstrip("/") + path.format(version=s.api_version, phone_number_id=s.phone_number_id)
        return await api.call(self.http, method, url, s.access_token.get_secret_value(), **kwargs)
