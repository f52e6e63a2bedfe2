"""Post text as Bluesky measures and annotates it: graphemes, and facets at UTF-8 byte offsets.

Pure functions, standard library only. `unicodedata` has no grapheme segmentation, so
`graphemes` approximates Unicode's extended grapheme clusters (UAX #29) for what posts contain:
CR LF, combining marks, variation selectors, emoji modifiers, emoji tag sequences, emoji ZWJ
sequences, regional-indicator pairs (flags) and Hangul jamo. Not covered: Prepend characters and
the Indic conjunct rule of Unicode 15.1 (a virama cluster may count one more than Bluesky counts).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

ZWJ = "\u200d"
# Extended_Pictographic, approximated by the blocks emoji live in (exact enough for ZWJ joins).
_PICTOGRAPHIC = ((0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
                 (0x2139, 0x2139), (0x2194, 0x21AA), (0x231A, 0x23FF), (0x24C2, 0x24C2), (0x25AA, 0x25FE),
                 (0x2600, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
                 (0x3297, 0x3299), (0x1F000, 0x1FAFF), (0x1FC00, 0x1FFFD))
_HANDLE = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
# atproto.com/specs/handle syntax, after "@" at the start or after a character that is not a word.
MENTION = re.compile(rf"(?<![\w@])@({_HANDLE})")
URL = re.compile(r"(?<![\w/])https?://[^\s<>\"]+")
_URL_TAIL = ".,;:!?'\"”’»"


# -- graphemes ---------------------------------------------------------------------------

def grapheme_count(text: str) -> int:
    return len(graphemes(text))


def graphemes(text: str) -> list[str]:
    """Split into (approximate) extended grapheme clusters."""
    clusters, i, n = [], 0, len(text)
    while i < n:
        start, i = i, i + 1
        if i < n and _pairs(text[start], text[i]):
            i += 1
        pictographic = _is_pictographic(text[start])
        while i < n and _joins(text[i - 1], text[i], pictographic):
            i += 1
        clusters.append(text[start:i])
    return clusters


def _pairs(first: str, second: str) -> bool:
    """CR LF (GB3), and two regional indicators making one flag (GB12, GB13)."""
    return (first, second) == ("\r", "\n") or (_is_regional(first) and _is_regional(second))


def _joins(prev: str, char: str, pictographic: bool) -> bool:
    if unicodedata.category(prev) == "Cc":        # never extend a control (GB4, GB5)
        return False
    if _is_extend(char):                           # GB9, GB9a
        return True
    if prev == ZWJ and pictographic and _is_pictographic(char):  # GB11: emoji ZWJ sequences
        return True
    return _hangul_joins(prev, char)               # GB6-GB8


def _is_extend(char: str) -> bool:
    code = ord(char)
    return (unicodedata.category(char) in ("Mn", "Me", "Mc") or code == 0x200D
            or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF   # variation selectors
            or 0x1F3FB <= code <= 0x1F3FF                               # skin-tone modifiers
            or 0xE0020 <= code <= 0xE007F)                              # emoji tag sequences


def _is_regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _is_pictographic(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _PICTOGRAPHIC) and not _is_regional(char)


def _hangul(char: str) -> str | None:
    code = ord(char)
    if 0x1100 <= code <= 0x115F or 0xA960 <= code <= 0xA97C:
        return "L"
    if 0x1160 <= code <= 0x11A7 or 0xD7B0 <= code <= 0xD7C6:
        return "V"
    if 0x11A8 <= code <= 0x11FF or 0xD7CB <= code <= 0xD7FB:
        return "T"
    if 0xAC00 <= code <= 0xD7A3:
        return "LV" if (code - 0xAC00) % 28 == 0 else "LVT"
    return None


def _hangul_joins(prev: str, char: str) -> bool:
    before, after = _hangul(prev), _hangul(char)
    if before == "L":
        return after in ("L", "V", "LV", "LVT")
    if before in ("LV", "V"):
        return after in ("V", "T")
    return before in ("LVT", "T") and after == "T"


# -- facets ------------------------------------------------------------------------------

def mention_handles(text: str) -> list[str]:
    """The handles "@handle" names, lower-cased, each once, in order of appearance."""
    return list(dict.fromkeys(m.group(1).lower() for m in MENTION.finditer(text)))


def build_facets(text: str, dids: Mapping[str, str]) -> list[dict[str, Any]]:
    """Mention facets for resolved handles (`dids`: handle -> DID) and link facets, by position."""
    spans = [(m.start(), m.end(), _mention(dids[m.group(1).lower()]))
             for m in MENTION.finditer(text) if m.group(1).lower() in dids]
    for match in URL.finditer(text):
        url = _trim_url(match.group(0))
        spans.append((match.start(), match.start() + len(url), {"$type": "app.bsky.richtext.facet#link", "uri": url}))
    return [{"index": {"byteStart": _bytes(text, start), "byteEnd": _bytes(text, end)}, "features": [feature]}
            for start, end, feature in sorted(spans, key=lambda span: span[0])]


def _mention(did: str) -> dict[str, str]:
    return {"$type": "app.bsky.richtext.facet#mention", "did": did}


def _trim_url(url: str) -> str:
    """Leave sentence punctuation and an unbalanced closing bracket out of the link."""
    while url and (url[-1] in _URL_TAIL or (url[-1] == ")" and url.count("(") < url.count(")"))):
        url = url[:-1]
    return url


def _bytes(text: str, index: int) -> int:
    """The UTF-8 byte offset of character `index`: facets count bytes, not characters."""
    return len(text[:index].encode("utf-8"))
