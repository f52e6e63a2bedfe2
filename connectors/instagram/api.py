"""Thin Graph API calls for Instagram: paths as constants, bodies as pure functions, errors by code.

The access token goes in an `Authorization: Bearer` header (as Meta's Instagram examples send
it), never in the URL, so it cannot end up in a logged request line. Graph error codes are
mapped by `connectors.meta_common.raise_for_graph_error`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from connectors.meta_common import raise_for_graph_error
from socialcrm.connector import OutboundReply, PermanentError, Sent, TransientError
from socialcrm.errors import platform_errors

PLATFORM = "Instagram"
MESSAGES_PATH = "{account}/messages"              # DMs and private replies (IG id, or the linked Page id)
COMMENT_REPLIES_PATH = "{comment_id}/replies"     # public reply under a comment
MEDIA_COMMENTS_PATH = "{media_id}/comments"       # a new top-level comment; also read by poll
MENTIONS_PATH = "{ig_user_id}/mentions"           # reply to a comment that @mentions us elsewhere
COMMENT_PATH = "{comment_id}"                     # hide/unhide (POST ?hide=) and delete (DELETE)
USER_PATH = "{ig_user_id}"                        # check(), and the mentioned_comment fetch
MEDIA_PATH = "{ig_user_id}/media"                 # the account's recent media, for poll
MENTIONED_FIELDS = "mentioned_comment.comment_id({comment_id}){{id,text,timestamp,username,media{{id}}}}"
COMMENT_FIELDS = "id,text,timestamp,from,parent_id"
POLL_COMMENT_FIELDS = f"{COMMENT_FIELDS},replies{{{COMMENT_FIELDS}}}"
POLL_MEDIA_LIMIT = 10
POLL_COMMENT_LIMIT = 50


def utcnow() -> datetime:
    return datetime.now(UTC)


class Graph:
    """`<api_base_url>/<api_version>/<path>` with the channel's token; every failure mapped."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, version: str, token: SecretStr) -> None:
        self.http, self.base, self.version, self._token = http, base_url.rstrip("/"), version, token

    def url(self, path: str) -> str:
        return f"{self.base}/{self.version}/{path}"

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        with platform_errors(PLATFORM):
            response = await self.http.request(method, self.url(path), headers=headers, **kwargs)
        raise_for_graph_error(response, PLATFORM)
        try:
            return response.json() if response.content else {}
        except ValueError as exc:
            words = f"{PLATFORM} answered HTTP {response.status_code} without JSON"
            if method == "GET":
                raise TransientError(words) from exc
            # A write may have happened: Meta has no idempotency key, so it is not retried blindly.
            raise PermanentError(f"{words}; check Instagram before trying again.") from exc

    async def get_media(self, ig_user_id: str) -> Any:
        params = {"fields": "id", "limit": str(POLL_MEDIA_LIMIT)}
        return await self.call("GET", path(MEDIA_PATH, ig_user_id=ig_user_id), params=params)

    async def get_comments(self, media_id: str) -> Any:
        params = {"fields": POLL_COMMENT_FIELDS, "limit": str(POLL_COMMENT_LIMIT)}
        return await self.call("GET", path(MEDIA_COMMENTS_PATH, media_id=media_id), params=params)


def path(template: str, **ids: str) -> str:
    """Ids come from webhooks: anything but URL-safe characters is escaped, so no id can leave its segment."""
    return template.format(**{key: quote(value, safe="") for key, value in ids.items()})


def dm_body(reply: OutboundReply) -> dict[str, Any]:
    """A DM answer: RESPONSE inside the 24 h window, HUMAN_AGENT tag after it (7 days)."""
    recipient = reply.recipient_external_id or reply.thread_external_id
    body: dict[str, Any] = {"recipient": {"id": recipient}, "messaging_type": "RESPONSE"}
    if reply.outside_window:
        if not reply.human_agent:
            raise PermanentError("Past the 24-hour window only a person's reply may be sent (HUMAN_AGENT tag).")
        body |= {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    return body | {"message": {"text": reply.text}}


def private_reply_body(reply: OutboundReply) -> dict[str, Any]:
    """One DM answering a public comment (`recipient.comment_id`), within 7 days of it."""
    if not reply.in_reply_to_external_id:
        raise PermanentError("A private reply needs the comment it answers.")
    return {"recipient": {"comment_id": reply.in_reply_to_external_id}, "message": {"text": reply.text}}


def public_reply_call(reply: OutboundReply, ig_user_id: str) -> tuple[str, dict[str, str]]:
    """Where a public answer goes: under the comment, on the media, or (a mention) via /mentions."""
    media, comment = reply.thread_external_id, reply.in_reply_to_external_id
    if reply.extra.get("in_reply_to_kind") == "mention":
        if not comment:
            raise PermanentError("A reply to a mention needs the comment that mentions us.")
        return path(MENTIONS_PATH, ig_user_id=ig_user_id), {"media_id": media, "comment_id": comment,
                                                           "message": reply.text}
    if comment and comment != media:
        return path(COMMENT_REPLIES_PATH, comment_id=comment), {"message": reply.text}
    return path(MEDIA_COMMENTS_PATH, media_id=media), {"message": reply.text}


def sent(answer: Any, key: str) -> Sent:
    """Graph gives an id but no time. No idempotency key exists on Meta's side, so an unreadable
    success is not retried (that could post twice): the agent is told to look on Instagram."""
    if isinstance(answer, dict) and isinstance(answer.get(key), str) and answer[key]:
        return Sent(answer[key], utcnow())
    raise PermanentError(f"{PLATFORM} accepted the reply but did not say its id; check Instagram before sending again.")


def succeeded(answer: Any, what: str) -> None:
    if not (isinstance(answer, dict) and answer.get("success") is True):
        raise PermanentError(f"{PLATFORM} did not confirm that the comment was {what}.")
