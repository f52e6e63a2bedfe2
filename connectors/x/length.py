"""X's weighted text length (twitter-text configuration v3), as a small pure function.

The rules, from twitter-text `config/v3.json` and `parseTweet`:

* the text is NFC-normalised first;
* a URL counts `transformedURLLength` = 23, however long it is;
* an emoji sequence (a ZWJ family, a flag, a skin-toned or keycap emoji) counts 2 as a whole;
* every other code point weighs 1 inside the ranges 0-4351, 8192-8205, 8208-8223, 8242-8247
  (Latin, Cyrillic, Greek, Hebrew, Arabic, Devanagari, ..., general punctuation) and 2
  outside them (CJK, most symbols, everything beyond the BMP);
* a post may weigh at most 280.

URL detection is an approximation of twitter-text's (which carries the full TLD list): see
README.md. Counting more than X would only make the core refuse a reply X accepts; counting
less makes X refuse it, which comes back to the agent as a PermanentError with X's reason.
"""

from __future__ import annotations

import re
import unicodedata

MAX_WEIGHTED_LENGTH = 280
URL_WEIGHT = 23
EMOJI_WEIGHT = 2
#: Code points that weigh 1; everything else weighs 2 (twitter-text v3 `ranges`).
LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))

# Generic TLDs that twitter-text links without a scheme (a short list of the common ones).
_GTLDS = ("com|net|org|info|biz|edu|gov|mil|int|name|pro|app|dev|shop|store|online|site|blog|news"
          "|xyz|tech|cloud|company|eu|asia|travel|museum|jobs|mobi")
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"  # a DNS label: at most 63 characters
_END = r"(?![\w-])"                          # a host ends where no label character follows
_PATH = r"(?:[/?#][^\s]*)?"                  # greedy; trailing punctuation is given back below
_TRAILING = ".,;:!?'\")]"                    # ends a sentence, not the URL
_SCHEME_URL = rf"(?i:https?://)(?:{_LABEL}\.)+{_LABEL}{_END}(?::\d+)?{_PATH}"
# Without a scheme: any domain under a generic TLD; under a country TLD only with two labels
# (foo.co.jp), a path (komplett.no/x) or the special short domains (t.co, x.tv).
_BARE_URL = (rf"(?i:(?:{_LABEL}\.)+(?:{_GTLDS}){_END}(?::\d+)?{_PATH}"
             rf"|(?:{_LABEL}\.){{2,}}[a-z]{{2}}{_END}{_PATH}"
             rf"|{_LABEL}\.[a-z]{{2}}[/?#][^\s]*"
             rf"|{_LABEL}\.(?:co|tv){_END})")
_URL = rf"(?<![\w@#$/.-])(?:{_SCHEME_URL}|{_BARE_URL})"

# An emoji sequence: a pictographic base with its modifiers (VS16, skin tones, tags, keycap),
# joined by ZWJ to more of them; regional-indicator pairs (flags); keycaps. A bare © or ®
# (below 4352) is text unless VS16 follows it.
_MOD = "[\ufe0f\u20e3\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]"
_BASE = ("(?:[\u00a9\u00ae]\ufe0f|[\u203c\u2049\u2122\u2139\u2194-\u21ff\u2300-\u23ff\u24c2"
         "\u25a0-\u27bf\u2900-\u297f\u2b00-\u2bff\u3030\u303d\u3297\u3299\U0001f000-\U0001faff])")
_EMOJI = (f"[\U0001f1e6-\U0001f1ff]{{2}}|[0-9#*]\ufe0f?\u20e3"
          f"|{_BASE}{_MOD}*(?:\u200d{_BASE}{_MOD}*)*")

_TOKEN = re.compile(rf"(?P<url>{_URL})|(?P<emoji>{_EMOJI})|(?P<char>.)", re.DOTALL)


def weighted_length(text: str) -> int:
    """The length X counts for `text` (a post is valid up to MAX_WEIGHTED_LENGTH)."""
    total = 0
    for match in _TOKEN.finditer(unicodedata.normalize("NFC", text)):
        if match.lastgroup == "url":
            url = match.group()
            link = url.rstrip(_TRAILING)
            total += URL_WEIGHT + sum(code_point_weight(ord(c)) for c in url[len(link):])
        elif match.lastgroup == "emoji":
            total += EMOJI_WEIGHT
        else:
            total += code_point_weight(ord(match.group()))
    return total


def code_point_weight(code_point: int) -> int:
    """1 inside the light ranges, 2 elsewhere (twitter-text v3 `defaultWeight` 200 / scale 100)."""
    return 1 if any(start <= code_point <= end for start, end in LIGHT_RANGES) else 2
