"""Bluesky (AT Protocol): poll notifications with an app-password session, answer in the thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator

from socialcrm.connector import (
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
from .marks import Mark, advance, parse_mark, render_mark, render_time
from .normalize import (
    Context,
    clean,
    fresh_items,
    parse_items,
    reaches,
    read_page,
    reply_refs,
)
from .richtext import build_facets, grapheme_count, mention_handles
from .session import SessionKeeper

log = logging.getLogger(__name__)

MAX_PAGES = 10          # older pages read per poll before we give up reaching the mark
MAX_TEXT_BYTES = 3000   # app.bsky.feed.post text maxLength (UTF-8 bytes), beside maxGraphemes 300


class BlueskySettings(BaseModel):
    identifier: str = Field(min_length=1, description="The brand account: handle (brand.bsky.social) or DID")
    app_password: SecretStr = Field(min_length=1, description="An app password (xxxx-xxxx-xxxx-xxxx), "
                                                              "never the account password")
    api_base_url: str = Field("https://bsky.social", description="The account's PDS or the bsky.social entryway")

    @field_validator("identifier")
    @classmethod
    def _no_at_sign(cls, value: str) -> str:
        """People copy handles as "@brand.bsky.social"; createSession wants them without the @."""
        return value.strip().removeprefix("@")


def utcnow() -> datetime:
    return datetime.now(UTC)


class BlueskyConnector(Connector):
    """Mentions, replies and quotes become public items, likes reactions; replies go in the thread."""

    key = "bluesky"
    display_name = "Bluesky"
    Settings = BlueskySettings
    capabilities = Capabilities(
        webhook=False,            # Bluesky has no webhooks (the firehose is the whole network)
        poll=True,                # app.bsky.notification.listNotifications
        public_replies=True,      # a post with reply.root/parent in the customer's thread
        private_replies=False,    # chat (chat.bsky.convo.*) is not supported
        max_length_public=300,    # graphemes, as text_length counts them
    )
    settings: BlueskySettings

    def __init__(self, settings: BaseModel, http: httpx.AsyncClient, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(settings, http)
        self.clock = clock
        self._session = SessionKeeper(http, self.settings.api_base_url, self.settings.identifier,
                                      self.settings.app_password, clock)

    def account_id(self) -> str:
        return self.settings.identifier

    def text_length(self, text: str, public: bool = True) -> int:
        """Bluesky counts graphemes: a family emoji or a flag is one."""
        return grapheme_count(text)

    async def check(self) -> None:
        await self._session.login()

    # -- polling --------------------------------------------------------------------------
    async def poll(self, cursor: str | None) -> tuple[list[NormalizedEvent], str | None]:
        """New notifications since the mark in `cursor`, oldest first, and the new mark (see marks.py)."""
        mark = parse_mark(cursor)
        items = await self._notifications_since(mark)
        fresh = fresh_items(items, mark)
        session = await self._session.current()
        events = parse_items(fresh, Context(session.did, self.account_id()))
        new_mark = advance(mark, ((f.at, f.uri) for f in fresh))
        return events, (render_mark(new_mark) if new_mark is not None and new_mark != mark else cursor)

    async def _notifications_since(self, mark: Mark | None) -> list[Any]:
        """Pages newest → older until one reaches the mark; on the first run only the newest page."""
        items: list[Any] = []
        api_cursor = None
        for _ in range(MAX_PAGES if mark is not None else 1):
            page = await self._session.call("GET", api.LIST_NOTIFICATIONS, params=api.list_params(api_cursor))
            try:
                batch, api_cursor = read_page(page)
            except MalformedPayload as exc:  # the poller speaks SendError: it retries this poll later
                raise TransientError(f"{api.PLATFORM} sent an unreadable page: {exc}") from exc
            items.extend(batch)
            if mark is None or not batch or api_cursor is None or reaches(batch, mark):
                return items
        log.warning("%s: more than %d pages of notifications since the last poll; older new ones are skipped",
                    api.PLATFORM, MAX_PAGES)
        return items

    # -- sending --------------------------------------------------------------------------
    async def send(self, reply: OutboundReply) -> Sent:
        """createRecord of an app.bsky.feed.post answering `in_reply_to` (else the thread's root)."""
        if not reply.public or reply.mode != "reply":
            raise PermanentError("Bluesky chat is not supported: only public replies in the thread can be sent.")
        text = clean(reply.text)
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise PermanentError(f"Too long for Bluesky: at most {MAX_TEXT_BYTES} bytes of text "
                                 "(emoji and non-Latin letters take several bytes each).")
        refs = await self._reply_refs(reply.in_reply_to_external_id or reply.thread_external_id)
        facets = build_facets(text, await self._resolve_handles(mention_handles(text)))
        now = self.clock()
        session = await self._session.current()
        record = build_post(text, now, refs, facets)
        answer = await self._session.call("POST", api.CREATE_RECORD, json={
            "repo": session.did, "collection": api.POST_COLLECTION, "record": record})
        if not isinstance(answer, dict) or not isinstance(answer.get("uri"), str):
            raise TransientError(f"{api.PLATFORM} accepted the post but answered without its uri")
        return Sent(answer["uri"], now)

    async def _reply_refs(self, parent_uri: str) -> dict[str, dict[str, str]]:
        """Strong refs (uri + cid) of the parent and its thread root, from getPosts."""
        answer = await self._session.call("GET", api.GET_POSTS, params={"uris": parent_uri})
        try:
            refs = reply_refs(answer, parent_uri)
        except MalformedPayload as exc:
            raise TransientError(f"{api.PLATFORM} sent an unreadable post: {exc}") from exc
        if refs is None:
            raise PermanentError("The post you are answering is no longer on Bluesky (deleted, or hidden from us).")
        return refs

    async def _resolve_handles(self, handles: list[str]) -> dict[str, str]:
        """handle -> DID; a handle that does not resolve (400) stays plain text."""
        dids: dict[str, str] = {}
        for handle in handles:
            try:
                answer = await self._session.call("GET", api.RESOLVE_HANDLE, params={"handle": handle})
            except PermanentError:
                log.info("%s handle @%s does not resolve; left as plain text", api.PLATFORM, handle)
                continue
            did = answer.get("did") if isinstance(answer, dict) else None
            if isinstance(did, str) and did.startswith("did:"):
                dids[handle] = did
        return dids


def build_post(text: str, now: datetime, refs: dict[str, Any], facets: list[dict[str, Any]]) -> dict[str, Any]:
    """The app.bsky.feed.post record of a reply; `facets` left out when there are none."""
    record: dict[str, Any] = {"$type": api.POST_COLLECTION, "text": text, "createdAt": render_time(now),
                              "reply": refs}
    if facets:
        record["facets"] = facets
    return record
