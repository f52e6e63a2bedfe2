"""Small readers connectors share for decoded platform payloads (pure; no I/O, no framework).

One place for the two things every parser does the same way: read a string field (a wrong type
is the platform's mistake: MalformedPayload naming the field), and make a decoded tree storable.
"""

from __future__ import annotations

import re
from typing import Any

from socialcrm.errors import MalformedPayload
from socialcrm.text import clean_tree

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
