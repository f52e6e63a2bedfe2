"""Bluesky text: graphemes as the 300 limit counts them, and facets at UTF-8 byte offsets."""

from __future__ import annotations

import pytest

from connectors.bluesky import BlueskyConnector
from connectors.bluesky.richtext import (
    build_facets,
    grapheme_count,
    graphemes,
    mention_handles,
)

FAMILY = "\U0001F469\u200d\U0001F469\u200d\U0001F467"          # 👩‍👩‍👧: three people joined by ZWJ
COUPLE = "\U0001F468\u200d\u2764\ufe0f\u200d\U0001F468"         # 👨‍❤️‍👨: ZWJ, a variation selector inside
ENGLAND = "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"  # 🏴 + tag sequence


@pytest.mark.parametrize(("text", "count"), [
    ("", 0),
    ("Hei!", 4),
    ("æøå ÆØÅ", 7),                        # precomposed letters
    ("e\u0301", 1),                         # e + combining acute accent
    ("a\u0308\u0301", 1),                   # two combining marks on one letter
    ("\U0001F44D\U0001F3FD", 1),            # 👍🏽 thumbs up + skin-tone modifier
    ("\u2764\ufe0f", 1),                    # ❤️ heart + emoji variation selector
    ("1\ufe0f\u20e3", 1),                   # 1️⃣ keycap: digit, VS16, combining enclosing keycap
    (FAMILY, 1),
    (COUPLE, 1),
    (ENGLAND, 1),
    ("\U0001F1F3\U0001F1F4\U0001F1F8\U0001F1EA", 2),  # 🇳🇴🇸🇪: regional indicators pair up
    ("\U0001F1F3\U0001F1F4\U0001F1F8", 2),            # an odd one out stands alone
    ("\r\n", 1),
    ("\n\u0301", 2),                        # nothing extends a control character
    ("\u1112\u1161\u11ab", 1),              # 한 as conjoining jamo (L V T)
    ("한국어", 3),                           # precomposed Hangul syllables
    ("a\u200db", 2),                        # ZWJ joins emoji, not letters
    (f"Hei {FAMILY}🇳🇴!", 7),
])
def test_graphemes_count_what_a_reader_sees_as_one(text, count) -> None:
    assert grapheme_count(text) == count
    assert "".join(graphemes(text)) == text


def test_text_length_is_the_300_grapheme_limit() -> None:
    connector = BlueskyConnector(BlueskyConnector.Settings.model_validate(
        {"identifier": "nordlysko.bsky.social", "app_password": "x"}), None)
    limit = BlueskyConnector.capabilities.max_length_public
    assert connector.text_length("ø" * 300) == limit and connector.text_length(FAMILY * 300) == limit
    assert connector.text_length(FAMILY * 301) == limit + 1
    assert connector.text_length("e\u0301" * 300) == 300 and len("e\u0301" * 300) == 600


def test_facets_match_the_documentation_example() -> None:
    """docs.bsky.app/docs/advanced-guides/posts ("Mentions and links"): 23-35 and 74-108."""
    text = f"✨ example mentioning @atproto.com to share the URL {COUPLE} https://en.wikipedia.org/wiki/CBOR."
    assert build_facets(text, {"atproto.com": "did:plc:ewvi7nxzyoun6zhxrhs64oiz"}) == [
        {"index": {"byteStart": 23, "byteEnd": 35},
         "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:ewvi7nxzyoun6zhxrhs64oiz"}]},
        {"index": {"byteStart": 74, "byteEnd": 108},
         "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://en.wikipedia.org/wiki/CBOR"}]},
    ]


@pytest.mark.parametrize(("text", "handles"), [
    ("@ingrid.bsky.social hei", ["ingrid.bsky.social"]),
    ("Hei @Ingrid.BSKY.social, og @sven.example.com.", ["ingrid.bsky.social", "sven.example.com"]),
    ("(@jw.bsky.social) @jw.bsky.social", ["jw.bsky.social"]),
    ("kundeservice@nordlysko.no", []),        # an e-mail address is not a mention
    ("æ@nordlysko.no", []),
    ("@brand alene", []),                      # a handle has at least one dot
    ("@-bad.example.com @1.2", []),
])
def test_mentions_follow_the_handle_syntax(text, handles) -> None:
    assert mention_handles(text) == handles


@pytest.mark.parametrize(("text", "url"), [
    ("Se https://nordlysko.no/retur.", "https://nordlysko.no/retur"),
    ("(se https://nordlysko.no/retur)", "https://nordlysko.no/retur"),
    ("https://en.wikipedia.org/wiki/Fish_(food)!", "https://en.wikipedia.org/wiki/Fish_(food)"),
    ("«http://example.com/a?b=c&d=e»", "http://example.com/a?b=c&d=e"),
])
def test_links_leave_trailing_punctuation_out(text, url) -> None:
    (facet,) = build_facets(text, {})
    start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
    assert text.encode()[start:end].decode() == url and facet["features"][0]["uri"] == url


def test_unresolved_mentions_get_no_facet_and_spans_are_in_text_order() -> None:
    text = "https://a.example @ingrid.bsky.social @nobody.example.com"
    facets = build_facets(text, {"ingrid.bsky.social": "did:plc:ingridhx4m7q2vkaoe5tzw3b"})
    assert [f["features"][0]["$type"] for f in facets] == ["app.bsky.richtext.facet#link",
                                                          "app.bsky.richtext.facet#mention"]
    assert text.encode()[facets[1]["index"]["byteStart"]:facets[1]["index"]["byteEnd"]] == b"@ingrid.bsky.social"
