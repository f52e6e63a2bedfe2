"""The simulated platform's memory and its customers' behaviour; no I/O, seeded for repeatability.

Items are built in the documented webhook format (README.md) by this module alone: it shares no
code with the connector's parser, so a test that round-trips them checks both sides.
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from . import content

Item = dict[str, Any]
# Relative weights of what the customers do next.
MIX = {"post": 2, "comment": 4, "dm": 4, "edit": 1}
REPLY_TO_COMMENT_CHANCE = 0.4
RETURNING_DM_CHANCE = 0.5


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Simulation:
    """Everything the platform has seen and generated, in order (the order is the poll cursor)."""

    account_id: str
    seed: int | None = None
    events: list[Item] = field(default_factory=list)
    items: dict[str, Item] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: list[Item] = field(default_factory=list)
    replies_by_key: dict[str, Item] = field(default_factory=dict)
    moderation: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        # Unseeded runs get fresh ids, so restarting the platform never collides with stored items.
        self.run = f"{self.rng.getrandbits(24):06x}" if self.seed is not None else secrets.token_hex(3)
        self._counter = 0
        self.brand_posts = [f"{self.run}-bp{i}" for i in range(len(content.BRAND_POSTS))]

    # -- generation -----------------------------------------------------------------
    def next_event(self) -> Item:
        """One more thing a customer does, recorded so that polls and replies can find it."""
        kinds = [k for k in MIX if k != "edit" or self._editable()]
        kind = self.rng.choices(kinds, weights=[MIX[k] for k in kinds])[0]
        return self.record({"post": self._post, "comment": self._comment, "dm": self._dm, "edit": self._edit}[kind]())

    def follow_up(self, reply: Item) -> Item:
        """The customer answers the brand's reply in the same place: DM stays DM."""
        if not reply["public"]:
            author = self._customer(reply.get("recipient_id") or reply["thread_id"])
            return self.record(self._item("dm", author, thread_id=author["id"]))
        answered = self.items.get(reply.get("in_reply_to") or "", {})
        author_id = reply.get("recipient_id") or answered.get("author", {}).get("id") or self._new_id("u")
        item = self._item("comment", self._customer(author_id), thread_id=reply["thread_id"], parent_id=reply["id"])
        item["text"] = content.random_follow_up(self.rng)
        return self.record(item)

    def record(self, item: Item) -> Item:
        self.events.append(item)
        self.items[item["id"]] = item
        return item

    def _post(self) -> Item:
        item = self._item("post", self._customer(self._new_id("u")))
        item["thread_id"] = item["id"]
        return item

    def _comment(self) -> Item:
        comments = [i for i in self.items.values() if i["type"] == "comment"]
        if comments and self.rng.random() < REPLY_TO_COMMENT_CHANCE:
            parent = self.rng.choice(comments)
            return self._item("comment", self._any_customer(), thread_id=parent["thread_id"], parent_id=parent["id"])
        roots = self.brand_posts + [i["id"] for i in self.items.values() if i["type"] == "post"]
        root = self.rng.choice(roots)
        # Like Facebook, a top-level comment names the post it hangs under as its parent.
        return self._item("comment", self._any_customer(), thread_id=root, parent_id=root)

    def _dm(self) -> Item:
        returning = [i["author"]["id"] for i in self.items.values() if i["type"] == "dm"]
        if returning and self.rng.random() < RETURNING_DM_CHANCE:
            author = self.customers[self.rng.choice(returning)]
        else:
            author = self._customer(self._new_id("u"))
        return self._item("dm", author, thread_id=author["id"])

    def _edit(self) -> Item:
        target = self.rng.choice(self._editable())
        item = self._item("edit", target["author"], thread_id=target["thread_id"], target_id=target["id"])
        item["text"] = content.random_edit(self.rng, target["text"])
        item["visibility"] = "private" if target["type"] == "dm" else "public"
        return item

    def _editable(self) -> list[Item]:
        return [i for i in self.items.values() if i["type"] in ("post", "comment", "dm")]

    def _item(self, kind: str, author: dict[str, Any], **fields: Any) -> Item:
        item: Item = {"type": kind, "id": self._new_id(kind[0]), "timestamp": now_ms(), "author": author,
                      "text": content.random_text(self.rng), "attachments": []}
        item.update(fields)
        return item

    def _customer(self, author_id: str) -> dict[str, Any]:
        if author_id not in self.customers:
            self.customers[author_id] = content.random_customer(self.rng, author_id)
        return self.customers[author_id]

    def _any_customer(self) -> dict[str, Any]:
        """Half the time somebody we have heard from before: conversations, not strangers."""
        if self.customers and self.rng.random() < 0.5:
            return self.rng.choice(list(self.customers.values()))
        return self._customer(self._new_id("u"))

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{self.run}-{prefix}{self._counter}"

    # -- the API side -----------------------------------------------------------------
    def page(self, after: int, limit: int) -> dict[str, Any]:
        """A poll page; `next` is the position after it, null when nothing new."""
        events = self.events[after:after + limit]
        return {"account_id": self.account_id, "events": events,
                "next": str(after + len(events)) if events else None}

    def store_reply(self, body: dict[str, Any], key: str | None) -> tuple[Item, bool]:
        """Keep a reply; the same Idempotency-Key returns the first one (True when it is new)."""
        if key and key in self.replies_by_key:
            return self.replies_by_key[key], False
        reply = {**body, "id": self._new_id("r"), "created_at": now_ms(), "idempotency_key": key}
        self.replies.append(reply)
        self.items[reply["id"]] = {"type": "reply", "id": reply["id"], "author": {"id": self.account_id}}
        if key:
            self.replies_by_key[key] = reply
        return reply, True
