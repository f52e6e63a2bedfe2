"""Text as customers wrote it, made safe to store: every database, every encoding."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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


#: In JSON a lone surrogate or a NUL can only arrive as a \\uD8xx–\\uDFxx or \\u0000 escape
#: (raw bytes must be valid UTF-8): a body without one needs no cleaning at all.
_RISKY_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")


def needs_cleaning(body: bytes) -> bool:
    """Cheap pre-check on the raw body, so the hot path skips walking the decoded tree."""
    return _RISKY_ESCAPE.search(body) is not None


def clean_tree(value: Any, fix: Callable[[str], str] = clean_text) -> Any:
    """Every string of a decoded JSON tree (keys too) made storable; connectors keep `raw` with it."""
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, list):
        return [clean_tree(v, fix) for v in value]
    if isinstance(value, dict):
        return {clean_tree(k, fix): clean_tree(v, fix) for k, v in value.items()}
    return value


def one_line(exc: BaseException) -> str:
    """An error as one line of plain words, for CLI output and logs."""
    return " ".join(str(exc).split()) or type(exc).__name__
