"""Small readers connectors share for decoded platform payloads (pure; no I/O, no framework).

One place for the things every parser does the same way: read a string field (a wrong type
is the platform's mistake: MalformedPayload naming the field), make a decoded tree storable, and
turn whatever language tag a platform reports into the one form the inbox filters on.
"""

from __future__ import annotations

import re
from typing import Any

from socialcrm.errors import MalformedPayload
from socialcrm.text import clean_tree

#: Primary subtags that name no language: undetermined, no linguistic content, several, uncoded.
_NOT_A_LANGUAGE = frozenset({"und", "zxx", "mul", "mis"})
#: An ISO 639 code as BCP 47 uses it for the primary subtag: two or three ASCII letters.
_PRIMARY_SUBTAG = re.compile("[a-z]{2,3}")
#: PostgreSQL rejects NUL, UTF-8 cannot carry a lone surrogate: both become U+FFFD in `raw`.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    return _UNSTORABLE.sub("\ufffd", text)


def clean_payload(value: Any) -> Any:
    """Every string (keys too) of a decoded JSON tree made storable."""
    return clean_tree(value, storable)


def field_str(obj: Any, key: str, where: str, *, required: bool = True) -> str | None:
    """A string field; a wrong type is malformed, a missing optional one is None."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        problem = "is missing or not a non-empty string" if required else "is not a string"
        raise MalformedPayload(f"{where}.{key} {problem}")
    return value


def language_code(tag: Any) -> str | None:
    """A platform's language tag as its lowercase primary subtag: "en-US", "en_US", "EN" -> "en".

    Platforms disagree on regions (Telegram "en-GB", Bluesky "pt-BR", Mastodon "en") while the
    inbox filter and standard answers match codes exactly, so the region is dropped: "en" then
    finds every English speaker. None when the tag names no language: not a string, not a
    2-3 letter code, "und"/"zxx"/"mul"/"mis", or ISO 639's private-use range qaa-qtz (X marks
    posts without words with such codes: qme, qht, qst...)."""
    if not isinstance(tag, str):
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    if not _PRIMARY_SUBTAG.fullmatch(primary) or primary in _NOT_A_LANGUAGE:
        return None
    if len(primary) == 3 and "qaa" <= primary <= "qtz":
        return None
    return primary


def language_detail(tag: Any) -> dict[str, str]:
    """`NormalizedEvent.detail` for an item whose platform reported `tag`: {"language": code} or {}."""
    code = language_code(tag)
    return {"language": code} if code else {}


def error_words(body: Any, platform: str, status: int) -> str:
    """A refusal as the agent reads it: the platform's own `{"error": "..."}` words on one line,
    or a plain sentence when it sent none (or no JSON at all)."""
    message = body.get("error") if isinstance(body, dict) else None
    if isinstance(message, str) and message.strip():
        return " ".join(message.split())
    return f"{platform} refused the request (HTTP {status})"
