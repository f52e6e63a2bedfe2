"""Mastodon text both ways: status HTML -> plain text, and the length Mastodon counts for a reply.

Mastodon serves sanitized HTML (`<p>`, `<br>`, `<span>`, `<a>`; docs: api/guidelines "Formatting").
Plain text is rebuilt the way Mastodon built the HTML from the author's text: a paragraph break
(`</p><p>`) was a blank line, a `<br>` one newline. Links keep their whole text, including the
`<span class="invisible">` parts the web UI hides, so the agent sees the full URL; mentions keep
their visible "@user"; entities are unescaped exactly once, so `&lt;script&gt;` stays literal text.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

#: Elements that start a new line when a server other than Mastodon sends them.
_LINE_TAGS = frozenset({"div", "li", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6"})
_SKIPPED = frozenset({"script", "style"})   # never in sanitized content; dropped if a server sends them
_NEWLINE_RUN = re.compile(r"[ \t\r\f\v]*\n\s*")


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.skipping = 0
        self.in_pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag == "br":
            self.text = self.text.rstrip(" ") + "\n"
        elif tag == "p":
            self._end_block(2)
        elif tag in _LINE_TAGS:
            self._end_block(1)
            self.in_pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "p":
            self._end_block(2)
        elif tag in _LINE_TAGS:
            self._end_block(1)
            self.in_pre = max(0, self.in_pre - (tag == "pre"))

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if not self.in_pre:
            if "\n" in data and not data.strip():
                return  # indentation between tags, not something the author wrote
            data = _NEWLINE_RUN.sub(" ", data)
            if not self.text or self.text.endswith("\n"):
                data = data.lstrip(" ")
        self.text += data

    def _end_block(self, newlines: int) -> None:
        """Make the text end with at least `newlines` line breaks (none at the very start)."""
        self.text = self.text.rstrip(" ")
        if self.text.strip():
            have = len(self.text) - len(self.text.rstrip("\n"))
            self.text += "\n" * max(0, newlines - have)


def html_to_text(html: str) -> str:
    """Status `content` (HTML) -> the plain text the author typed, as far as it can be told."""
    builder = _TextBuilder()
    builder.feed(html)
    builder.close()
    return builder.text.strip()


# -- length as Mastodon counts it -----------------------------------------------------------

DEFAULT_URL_LENGTH = 23     # configuration.statuses.characters_reserved_per_url
# Only links with a scheme count as links (user/posting: "must begin with http:// or https://");
# trailing punctuation ends a sentence, not the URL.
_URL = re.compile(r"(?<![\w@])https?://[^\s<>\"]+?(?=[.,:;!?'\")\]]*(?:\s|$))", re.IGNORECASE)
# @user@domain: "Only the username part will count against your character limit".
_MENTION = re.compile(r"(?<![\w/=@])@([a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?)@[\w.-]*\w", re.IGNORECASE)


def countable_text(text: str, url_length: int = DEFAULT_URL_LENGTH) -> str:
    """The text as Mastodon measures it: every URL `url_length` characters, mentions without domain."""
    text = _URL.sub("x" * url_length, text)
    return _MENTION.sub(lambda m: "@" + m.group(1), text)


def status_length(text: str, url_length: int = DEFAULT_URL_LENGTH) -> int:
    """Characters Mastodon counts for a status (grapheme clusters of the countable text)."""
    return grapheme_count(countable_text(text, url_length))


def grapheme_count(text: str) -> int:
    """User-perceived characters, close to Unicode's extended grapheme clusters (stdlib only).

    Combining marks, variation selectors, emoji skin tones, tag characters and anything joined by
    a zero-width joiner stay with the character before them; flags are pairs of regional
    indicators; CR LF is one. Rare scripts with spacing marks may differ by a character or two.
    """
    count, previous, open_flag = 0, "", False
    for char in text:
        if previous and _extends(previous, char, open_flag):
            open_flag = False
        else:
            count += 1
            open_flag = _is_regional(char)
        previous = char
    return count


def _extends(previous: str, char: str, open_flag: bool) -> bool:
    code = ord(char)
    return (
        previous == "\u200d" or char == "\u200d"
        or (previous == "\r" and char == "\n")
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
        or 0xFE00 <= code <= 0xFE0F or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F
        or 0x1160 <= code <= 0x11FF or 0xD7B0 <= code <= 0xD7FF      # Hangul vowel and final jamo
        or (open_flag and _is_regional(char))
    )


def _is_regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF
