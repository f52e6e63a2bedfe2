"""Graph API paths and request bodies for a Page: Send API, comments, moderation (no I/O here).

The calls themselves go through `connectors.meta_common.GraphAPI` (token in an Authorization
header, every error mapped by Graph error code); this module only says what to send where.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from socialcrm.connector import OutboundReply, PermanentError, Sent

PLATFORM = "Facebook"
MESSAGES_PATH = "{page_id}/messages"          # Send API: Messenger replies and private replies
COMMENTS_PATH = "{object_id}/comments"        # public reply under a comment or a post
NODE_PATH = "{object_id}"                     # hide / unhide (POST is_hidden), delete (DELETE)
ME_FIELDS = "id,name"
HUMAN_AGENT_TAG = "HUMAN_AGENT"


def node(object_id: str) -> str:
    """An id as one path segment: Graph ids are digits and `_`, anything else is escaped."""
    return quote(object_id, safe="")


def messages_path(page_id: str) -> str:
    return MESSAGES_PATH.format(page_id=node(page_id))


def comments_path(object_id: str) -> str:
    return COMMENTS_PATH.format(object_id=node(object_id))


def node_path(object_id: str) -> str:
    return NODE_PATH.format(object_id=node(object_id))


def messenger_body(reply: OutboundReply) -> dict[str, Any]:
    """A Messenger reply: RESPONSE inside the 24-hour window, a person's HUMAN_AGENT tag after it."""
    recipient = reply.recipient_external_id or reply.thread_external_id
    body: dict[str, Any] = {"recipient": {"id": recipient}, "messaging_type": "RESPONSE",
                            "message": {"text": reply.text}}
    if reply.outside_window:
        if not reply.human_agent:
            raise PermanentError("More than 24 hours have passed since the customer last wrote: "
                                 "only a person may still answer (HUMAN_AGENT), not an automated reply.")
        body |= {"messaging_type": "MESSAGE_TAG", "tag": HUMAN_AGENT_TAG}
    return body


def private_reply_body(reply: OutboundReply) -> dict[str, Any]:
    """One private message answering a public comment (or a visitor's post, the thread's root)."""
    item = reply.in_reply_to_external_id
    if not item:
        raise PermanentError("There is no comment to answer privately.")
    key = "post_id" if item == reply.thread_external_id else "comment_id"
    return {"recipient": {key: item}, "messaging_type": "RESPONSE", "message": {"text": reply.text}}


def comment_body(reply: OutboundReply) -> dict[str, Any]:
    return {"message": reply.text}


def comment_target(reply: OutboundReply) -> str:
    """The comment a public reply goes under: the customer's latest, else the post itself."""
    return reply.in_reply_to_external_id or reply.thread_external_id


def hide_body(hidden: bool) -> dict[str, Any]:
    return {"is_hidden": hidden}


def sent(answer: Any, key: str, now: datetime) -> Sent:
    """`{"message_id"}` (Send API) or `{"id"}` (a comment). Neither has a time: now is when.

    A reply that went out but whose id we cannot read is not retried (Meta has no idempotency
    key, so a retry could send it twice); the Page's echo will still show it in the thread.
    """
    external_id = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(external_id, str) or not external_id:
        raise PermanentError(f"{PLATFORM} accepted the reply but did not say its id; "
                             "check the conversation before sending it again.")
    return Sent(external_id, now)
