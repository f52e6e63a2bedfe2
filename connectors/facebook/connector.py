"""Facebook Page: Messenger (private) and the Page feed (public comments), through one Meta app."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from connectors.meta_common import GraphAPI, handshake, verify_signature
from connectors.meta_common.graph import CURRENT_VERSION, platform_health
from socialcrm.connector import (
    AuthFailed,
    Capabilities,
    Connector,
    HandshakeResponse,
    NormalizedEvent,
    OutboundReply,
    PermanentError,
    Sent,
    WebhookRequest,
)

from . import api, poll
from .normalize import parse_body

log = logging.getLogger(__name__)

#: A first poll (no cursor yet) looks back this far; later ones from the cursor, minus OVERLAP
#: for items that became visible late (redelivered ids are no-ops for the core).
FIRST_POLL_LOOKBACK = timedelta(hours=24)
POLL_OVERLAP = timedelta(minutes=5)


class FacebookSettings(BaseModel):
    page_id: str = Field(pattern=r"^[0-9]+$", description="The Facebook Page's id (digits)")
    app_secret: SecretStr = Field(min_length=1, description="The Meta app's App Secret: checks X-Hub-Signature-256")
    verify_token: SecretStr | None = Field(None, description="Any string you also type into the app's Webhooks "
                                                              "setup; answers Meta's verification request")
    access_token: SecretStr | None = Field(None, description="A Page access token (or a system user token) with "
                                                              "pages_messaging, pages_manage_engagement, ...; "
                                                              "needed to reply, moderate and poll")
    api_version: str = Field(CURRENT_VERSION, pattern=r"^v[0-9]+\.[0-9]+$", description="Graph API version")
    api_base_url: str = Field("https://graph.facebook.com", description="Graph API base URL (tests, proxies)")


class FacebookConnector(Connector):
    """One channel is one Page; its Messenger threads are private, its feed comments public."""

    key = "facebook"
    display_name = "Facebook Page"
    Settings = FacebookSettings
    capabilities = Capabilities(
        webhook=True,                               # Messenger and feed webhooks of one Meta app
        poll=True,                                  # reconciliation: deliveries Meta never sent
        public_replies=True,                        # POST /{comment-id}/comments
        private_replies=True,                       # Send API, POST /{page-id}/messages
        private_reply_to_public=True,               # recipient.comment_id: one DM answering a comment
        max_length_public=8000,                     # comment length: not in Graph's reference; Facebook's own limit
        max_length_private=2000,                    # Send API: text "must be UTF-8 and less than 2000 characters"
        reply_window=timedelta(hours=24),           # standard messaging window (messaging_type RESPONSE)
        human_agent_window=timedelta(days=7),       # HUMAN_AGENT tag, for a person's replies only
        private_reply_window=timedelta(days=7),     # "within 7 days from when the post or comment was created"
        edits=True,
        deletes=True,
        attachments=False,                          # received, never sent
        moderation=frozenset({"hide", "unhide", "delete"}),
    )
    settings: FacebookSettings
    #: When "now" is, for sent_at and the first poll; tests replace it.
    clock: Callable[[], datetime] = staticmethod(lambda: datetime.now(UTC))

    def account_id(self) -> str:
        return self.settings.page_id

    # -- webhooks (pure) ------------------------------------------------------------------
    def handshake(self, req: WebhookRequest) -> HandshakeResponse | None:
        token = self.settings.verify_token
        return handshake(req, token.get_secret_value() if token else "")

    def verify(self, req: WebhookRequest) -> None:
        verify_signature(req, self.settings.app_secret.get_secret_value())

    def parse(self, req: WebhookRequest) -> list[NormalizedEvent]:
        return parse_body(req.body)

    # -- Graph API --------------------------------------------------------------------------
    async def send(self, reply: OutboundReply) -> Sent:
        graph, page = self._graph(), self.settings.page_id
        if reply.mode == "template":
            raise PermanentError("Facebook Messenger has no message templates to send.")
        if reply.mode == "private_reply":
            answer = await graph.post(api.messages_path(page), json_body=api.private_reply_body(reply))
            return api.sent(answer, "message_id", self.clock())
        if reply.public:
            answer = await graph.post(api.comments_path(api.comment_target(reply)), json_body=api.comment_body(reply))
            return api.sent(answer, "id", self.clock())
        answer = await graph.post(api.messages_path(page), json_body=api.messenger_body(reply))
        return api.sent(answer, "message_id", self.clock())

    async def poll(self, cursor: str | None) -> tuple[list[NormalizedEvent], str | None]:
        since = self._since(cursor)
        events = await poll.reconcile(self._graph(), self.settings.page_id, since - POLL_OVERLAP)
        newest = max((event.created_at for event in events), default=None)
        if newest is None or newest <= since:
            return events, cursor
        return events, str(int(newest.timestamp()))

    async def check(self) -> None:
        me = await self._graph().get("me", fields=api.ME_FIELDS)
        if not isinstance(me, dict) or me.get("id") != self.settings.page_id:
            raise AuthFailed("The access token is not a token of this Page: use the Page's own access token.")

    async def platform_health(self) -> dict[str, Any]:
        """Token validity and expiry (debug_token); whether our app gets this Page's webhooks."""
        return await platform_health(self._graph(), f"{self.settings.page_id}/subscribed_apps")

    async def moderate(self, action: str, external_id: str) -> None:
        if action not in self.capabilities.moderation:
            raise PermanentError(f"{self.display_name} cannot {action} items")
        graph = self._graph()
        if action == "delete":
            await graph.delete(api.node_path(external_id))
        else:
            await graph.post(api.node_path(external_id), json_body=api.hide_body(action == "hide"))

    def _graph(self) -> GraphAPI:
        if self.settings.access_token is None:
            raise AuthFailed("No Page access token is configured for this channel.")
        return GraphAPI(self.http, self.settings.api_base_url, self.settings.api_version,
                        self.settings.access_token.get_secret_value(), api.PLATFORM)

    def _since(self, cursor: str | None) -> datetime:
        """The cursor is the newest item's time in epoch seconds; none (or garbage) looks back a day."""
        if cursor is not None and cursor.isdigit():
            return datetime.fromtimestamp(int(cursor), UTC)
        if cursor is not None:
            log.warning("facebook poll: ignoring unreadable cursor %r", cursor[:40])
        return self.clock() - FIRST_POLL_LOOKBACK
