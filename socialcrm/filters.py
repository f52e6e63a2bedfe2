"""Inbox filters: channel, tag, status, assignee, public/private, language, combinable.

They live in the query string (`/?status=snoozed&tag=billing`), so a filtered view can be
bookmarked and shared. Parsing is strict: a value we do not understand is an error with a
reason (the page answers 400), never silently ignored, so a bookmark cannot quietly show
something other than what it says.

Filtered lists use the queue order; with a status or an assignee they are served by the same
indexes as the tabs, otherwise they are still paged (PAGE_SIZE rows, at most MAX_PAGE pages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from socialcrm import models, tags

conv_t = models.Conversation.__table__
tag_t = models.ConversationTag.__table__
STATUSES = ("open", "pending", "snoozed", "resolved", "spam")
STATUS_LABELS = {"open": "Open", "pending": "Waiting on customer", "snoozed": "Snoozed", "resolved": "Resolved",
                 "spam": "Spam"}
VISIBILITIES = ("public", "private")
MAX_PAGE = 100
LANGUAGE_MAX = 16


class FilterRejected(ValueError):
    """A filter value we do not understand; str(exc) says which and why."""


@dataclass(frozen=True)
class Filters:
    channel: int | None = None
    tag: str = ""
    status: str = ""            # "" is "open"
    assignee: str = ""          # "" | "me" | "unassigned" | a user id
    visibility: str = ""        # "" | "public" | "private"
    language: str = ""
    page: int = 1

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) not in (None, "") for f in fields(self) if f.name != "page")

    def query(self, page: int | None = None) -> str:
        """The query string of this view (of another page of it): what links and htmx fetch."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "page"}
        pairs = [(k, str(v)) for k, v in values.items() if v not in (None, "")]
        if (page or self.page) > 1:
            pairs.append(("page", str(page or self.page)))
        return urlencode(pairs)


def parse(query: Mapping[str, str]) -> Filters:
    """Filters from a query string; FilterRejected for a value that is not one we offer."""
    get = lambda name: (query.get(name) or "").strip()  # noqa: E731 - a local shorthand
    return Filters(channel=_int("channel", get("channel")), tag=_tag(get("tag")),
                   status=_one_of("status", get("status"), STATUSES), assignee=_assignee(get("assignee")),
                   visibility=_one_of("visibility", get("visibility"), VISIBILITIES),
                   language=_language(get("language")), page=_page(get("page")))


def _int(name: str, value: str) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise FilterRejected(f"The {name} filter takes a number, not {value!r}.")
    return int(value)


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value and value not in allowed:
        raise FilterRejected(f"The {name} filter takes one of {', '.join(allowed)}; {value!r} is not one of them.")
    return value


def _tag(value: str) -> str:
    try:
        return tags.normalise(value) if value else ""
    except tags.TagRejected as exc:
        raise FilterRejected(f"The tag filter: {exc}") from None


def _assignee(value: str) -> str:
    if value and value not in ("me", "unassigned") and not value.isdigit():
        raise FilterRejected(f"The assignee filter takes me, unassigned or a person's number, not {value!r}.")
    return value


def _language(value: str) -> str:
    if len(value) > LANGUAGE_MAX or not all(c.isalnum() or c == "-" for c in value):
        raise FilterRejected("The language filter takes a language code such as nb, en or pt-BR.")
    return value


def _page(value: str) -> int:
    page = _int("page", value)
    if page is None:
        return 1
    if not 1 <= page <= MAX_PAGE:
        raise FilterRejected(f"Pages go from 1 to {MAX_PAGE}; narrow the filters to see older conversations.")
    return page


def where(f: Filters, viewer_id: int) -> list[Any]:
    """The WHERE clauses of a filtered list (visibility by team is added by the caller)."""
    status = f.status or "open"
    clauses: list[Any] = [conv_t.c.status == (models.OPEN if status == "open" else status)]
    if f.channel is not None:
        clauses.append(conv_t.c.channel_id == f.channel)
    if f.tag:
        clauses.append(conv_t.c.id.in_(sa.select(tag_t.c.conversation_id).where(tag_t.c.tag == f.tag)))
    if f.assignee == "me":
        clauses.append(conv_t.c.assignee_id == viewer_id)
    elif f.assignee == "unassigned":
        clauses.append(conv_t.c.assignee_id.is_(None))
    elif f.assignee:
        clauses.append(conv_t.c.assignee_id == int(f.assignee))
    if f.visibility:
        clauses.append(conv_t.c.public.is_(f.visibility == "public"))
    if f.language:
        clauses.append(conv_t.c.language == f.language)
    return clauses
