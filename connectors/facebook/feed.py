"""Page feed changes (`entry[].changes[]`, `field: "feed"`) -> events; pure functions.

Everything on the feed is public and hangs under its post: the thread is `post_id`, and
`parent_id` is what a comment answers (the post itself for a top-level comment). `created_time`
is epoch seconds. Edits, removals and hide/unhide carry the change's own time, `entry.time`
(seconds), which also tells two edits of one comment apart; an edit may arrive before its
`add`, and the core applies it when the comment comes.
"""

from __future__ import annotations

from typing import Any

from socialcrm.connector import Attachment, Author, MalformedPayload, NormalizedEvent

from .fields import Entry, Item, person, string, time_s

#: What hide and unhide leave on the message (DESIGN: an edit with a moderation state).
MODERATION = {"hide": "hidden", "unhide": ""}
DELETE_VERBS = frozenset({"remove", "delete"})


def parse_feed_comment(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """A comment or a reply to one: added, edited, removed, hidden or unhidden."""
    value = _value(item)
    verb, comment_id = string(value, "verb", "feed"), string(value, "comment_id", "feed comment")
    post_id = string(value, "post_id", f"comment {comment_id}")
    if verb == "add":
        author = person(value.get("from"), f"comment {comment_id}.from", entry.page_id)
        parent = string(value, "parent_id", f"comment {comment_id}", required=False) or post_id
        return [_item_event(item, entry, "echo" if author.is_self else "comment", comment_id, post_id, author,
                            parent)]
    return _changes(item, entry, verb, comment_id, post_id)


def parse_feed_post(item: Item, entry: Entry) -> list[NormalizedEvent]:
    """A post on the Page by a visitor (`status`, `post`, `photo`, `video`): its own public thread.

    The Page's own posts are publishing, not customer care: they are left out, and so are their
    edits and removals.
    """
    value = _value(item)
    verb, post_id = string(value, "verb", "feed"), string(value, "post_id", "feed post")
    sender = value.get("from")
    if isinstance(sender, dict) and sender.get("id") == entry.page_id:
        return []
    if verb == "add":
        author = person(sender, f"post {post_id}.from", entry.page_id)
        return [_item_event(item, entry, "mention", post_id, post_id, author, None)]
    return _changes(item, entry, verb, post_id, post_id)


# -- building blocks -------------------------------------------------------------------

def _item_event(item: Item, entry: Entry, kind: str, external_id: str, post_id: str, author: Author,
                parent: str | None) -> NormalizedEvent:
    value, where = item["value"], f"{kind} {external_id}"
    return NormalizedEvent(
        kind=kind, public=True, external_id=external_id, thread_external_id=post_id, author=author,
        created_at=time_s(value.get("created_time"), f"{where}.created_time"),
        text=string(value, "message", where, required=False) or "", in_reply_to_external_id=parent,
        attachments=build_attachments(value, where), raw=item, account_id=entry.page_id,
    )


def _changes(item: Item, entry: Entry, verb: str, target: str, post_id: str) -> list[NormalizedEvent]:
    """edited -> edit; remove -> delete (a tombstone); hide/unhide -> edit with a moderation state."""
    value = item["value"]
    if verb == "edited":
        text = string(value, "message", f"edit of {target}", required=False) or ""
        return [_change(item, entry, "edit", f"{target}:edit:{entry.time}", target, post_id, text=text)]
    if verb in DELETE_VERBS:
        return [_change(item, entry, "delete", f"{target}:delete", target, post_id)]
    if verb in MODERATION:
        return [_change(item, entry, "edit", f"{target}:{verb}:{entry.time}", target, post_id,
                        detail={"moderation": MODERATION[verb]})]
    return []  # add of something else, block, mute, follow, update...: understood, not handled


def _change(item: Item, entry: Entry, kind: str, external_id: str, target: str, post_id: str, *,
            text: str = "", detail: dict[str, Any] | None = None) -> NormalizedEvent:
    sender = item["value"].get("from")
    author = person(sender, f"{external_id}.from", entry.page_id) if sender is not None \
        else Author(entry.page_id, is_self=True)  # no author given: the Page did it
    return NormalizedEvent(
        kind=kind, public=True, external_id=external_id, thread_external_id=post_id, author=author,
        created_at=time_s(entry.time, f"{external_id}: entry.time"), text=text, target_external_id=target,
        detail=detail or {}, raw=item, account_id=entry.page_id,
    )


def build_attachments(value: Item, where: str) -> list[Attachment]:
    """A comment's `photo` / `video` URL; a visitor's photo or video post's `link`."""
    found: list[Attachment] = []
    for key, kind in (("photo", "image"), ("video", "video")):
        url = string(value, key, where, required=False)
        if url:
            found.append(Attachment(kind, url))
    if not found and value.get("item") in ("photo", "video"):
        link = string(value, "link", where, required=False)
        if link:
            found.append(Attachment("image" if value["item"] == "photo" else "video", link))
    return found


def _value(item: Item) -> Item:
    value = item.get("value")
    if not isinstance(value, dict):
        raise MalformedPayload("changes[].value is not an object")
    return value
