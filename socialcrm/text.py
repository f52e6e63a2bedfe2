"""Text as customers wrote it, made safe to store: every database, every encoding."""

from __future__ import annotations

import re

_SURROGATES = re.compile("[\ud800-\udfff]")
PREVIEW_CHARS = 140


def clean_text(text: str | None) -> str:
    """Lone surrogates cannot be stored as UTF-8 and PostgreSQL rejects NUL: replace, never fail."""
    if not text:
        return ""
    return _SURROGATES.sub("\ufffd", text.replace("\x00", ""))


def preview(text: str) -> str:
    """The first line, short: what the inbox row shows."""
    line = text.strip().split("\n", 1)[0]
    return line[:PREVIEW_CHARS]
