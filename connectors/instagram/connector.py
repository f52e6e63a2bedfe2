"""Instagram professional accounts: DMs, comments and @mentions through Meta's webhooks and Graph API."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from connectors.meta_common import GraphAPI, handshake, verify_signature
from connectors.meta_common.graph import platform_health
from socialcrm.connector import (
    Capabilities,
    Connector,
    HandshakeResponse,
    MalformedPayload,
    NormalizedEvent,
    OutboundReply,
    PermanentError,
    Sent,
    TransientError,
    WebhookRequest,
)

from . import api, fetched
from .api import Graph, path
from .normalize import parse_webhook

log = logging.getLogger(__name__)

NUMERIC_ID = r"^[0-9]+$"
#: The first reconciliation poll (no cursor yet) looks back this far.
FIRST_POLL_LOOKBACK = timedelta(hours=24)


class InstagramSettings(BaseModel):
    app_secret: SecretStr = Field(min_length=1, description="Meta app secret: signs webhook deliveries")
    verify_token: SecretStr = Field(min_length=1, description="Any string; the same in the app's webhook setup")
    access_token: SecretStr = Field(min_length=1, description="Page (or system-user) token with the Instagram permissions")
    ig_user_id: str = Field(pattern=NUMERIC_ID, description="The Instagram professional account id (entry.id)")
    page_id: str | None = Field(None, pattern=NUMERIC_ID,
                                description="The linked Facebook Page; if set, DMs go through /{page-id}/messages")
    api_version: str = Field("v26.0", pattern=r"^v[0-9]+\.[0-9]+$", description="Graph API version")
    api_base_url: str = Field("https://graph.facebook.com", description="Graph API host (tests and proxies)")


class InstagramConnector(Connector):
    """Instagram DMs (text, image, echo, unsend, reactions, seen), comments, replies and @mentions."""

    key = "instagram"
    display_name = "Instagram"
    Settings = InstagramSettings
    capabilities = Capabilities(
        webhook=True,
        poll=True,                              # reconciliation: recent comments on recent media
        public_replies=True,                    # POST /{comment-id}/replies, /{media-id}/comments
        private_replies=True,                   # DMs
        private_reply_to_public=True,           # one DM answering a comment (recipient.comment_id)
        max_length_public=2200,                 # Instagram's comment limit; not in the Graph docs (README)
        max_length_private=1000,                # "1000 bytes or less", UTF-8: see text_length
        reply_window=timedelta(hours=24),
        human_agent_window=timedelta(days=7),   # HUMAN_AGENT tag, people only
        private_reply_window=timedelta(days=7),
        deletes=True,                           # customers unsend DMs
        moderation=frozenset({"hide", "unhide", "delete"}),
    )
    settings: InstagramSettings

    def account_id(self) -> str:
        return self.settings.ig_user_id

    def text_length(self, text: str, public: bool = True) -> int:
        """Meta counts DM text in UTF-8 bytes (1000 at most); comments in characters."""
        return len(text) if public else len(text.encode("utf-8", "surrogatepass"))

    # -- webhooks -------------------------------------------------------------------
    def handshake(self, req: WebhookRequest) -> HandshakeResponse | None:
        return handshake(req, self.settings.verify_token.get_secret_value())

    def verify(self, req: WebhookRequest) -> None:
        verify_signature(req, self.settings.app_secret.get_secret_value())

    def parse(self, req: WebhookRequest) -> list[NormalizedEvent]:
        return parse_webhook(req.body)

    # -- Graph API --------------------------------------------------------------------
    async def send(self, reply: OutboundReply) -> Sent:
        if reply.mode == "template":
            raise PermanentError("Instagram has no message templates.")
        if reply.mode == "private_reply":
            return api.sent(await self._post_message(api.private_reply_body(reply)), "message_id")
        if reply.public:
            where, form = api.public_reply_call(reply, self.settings.ig_user_id)
            return api.sent(await self._graph().call("POST", where, data=form), "id")
        return api.sent(await self._post_message(api.dm_body(reply)), "message_id")

    async def hydrate(self, events: list[NormalizedEvent]) -> list[NormalizedEvent]:
        """Mentions arrive as ids: fetch each comment. Rate limits, auth and outages propagate
        (the core keeps the delivery and retries); a comment Meta refuses for good stays a
        mention without text, with the reason in `detail["fetch_error"]`."""
        return [await self._fetch_mention(e) if e.detail.get("needs_fetch") else e for e in events]

    async def poll(self, cursor: str | None) -> tuple[list[NormalizedEvent], str | None]:
        """Comments on the most recent media newer than the cursor (an ISO time), oldest first."""
        since = _cursor_time(cursor) or api.utcnow() - FIRST_POLL_LOOKBACK
        events: list[NormalizedEvent] = []
        try:
            for media_id in fetched.media_ids(await self._graph().get_media(self.settings.ig_user_id)):
                page = await self._graph().get_comments(media_id)
                events += fetched.parse_comment_page(page, media_id, self.settings.ig_user_id)
        except MalformedPayload as exc:  # the poller speaks SendError: it retries this poll later
            raise TransientError(f"Instagram sent an unreadable page: {exc}") from exc
        events = fetched.newer_than(events, since)
        return events, events[-1].created_at.isoformat() if events else cursor

    async def check(self) -> None:
        await self._graph().call("GET", path(api.USER_PATH, ig_user_id=self.settings.ig_user_id),
                                 params={"fields": "id,username"})

    async def platform_health(self) -> dict[str, Any]:
        """Token validity and expiry; the subscription is asked of the linked Page, when configured."""
        s = self.settings
        graph = GraphAPI(self.http, s.api_base_url, s.api_version, s.access_token.get_secret_value(), api.PLATFORM)
        return await platform_health(graph, f"{s.page_id}/subscribed_apps" if s.page_id else None)

    async def moderate(self, action: str, external_id: str) -> None:
        comment = path(api.COMMENT_PATH, comment_id=external_id)
        if action in ("hide", "unhide"):
            answer = await self._graph().call("POST", comment, params={"hide": str(action == "hide").lower()})
            return api.succeeded(answer, "hidden" if action == "hide" else "shown again")
        if action == "delete":
            return api.succeeded(await self._graph().call("DELETE", comment), "deleted")
        raise PermanentError(f"Instagram cannot {action} a comment.")

    async def _post_message(self, body: dict[str, Any]) -> Any:
        account = self.settings.page_id or self.settings.ig_user_id
        return await self._graph().call("POST", path(api.MESSAGES_PATH, account=account), json=body)

    async def _fetch_mention(self, event: NormalizedEvent) -> NormalizedEvent:
        if not event.external_id.isdigit():  # it goes into a field expression: digits only
            return fetched.mention_not_fetched(event, "The comment id is not numeric.")
        fields = api.MENTIONED_FIELDS.format(comment_id=event.external_id)
        try:
            answer = await self._graph().call("GET", path(api.USER_PATH, ig_user_id=self.settings.ig_user_id),
                                              params={"fields": fields})
        except PermanentError as exc:
            log.warning("instagram: mention %s cannot be fetched: %s", event.external_id, exc)
            return fetched.mention_not_fetched(event, str(exc))
        return fetched.fill_mention(event, answer)

    def _graph(self) -> Graph:
        s = self.settings
        return Graph(self.http, s.api_base_url, s.api_version, s.access_token)


def _cursor_time(cursor: str | None) -> datetime | None:
    if not cursor:
        return None
    try:
        moment = datetime.fromisoformat(cursor)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        log.warning("instagram: poll cursor %r is not a UTC time; starting over", cursor[:40])
        return None
    return moment
