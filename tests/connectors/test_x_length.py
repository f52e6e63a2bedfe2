"""X's weighted length (twitter-text v3): the core checks replies against it before sending.

Cases marked "conformance" are taken from twitter-text's conformance/validate.yml
(WeightedTweetsWithDiscountedEmojiCounterTest and the v3 length tests), with the counts it expects.
"""

from __future__ import annotations

import time

import httpx
import pytest

from connectors.x import XConnector
from connectors.x.length import MAX_WEIGHTED_LENGTH, code_point_weight, weighted_length

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"       # 👨‍👩‍👧‍👦, 7 code points
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"  # tag sequence flag


@pytest.mark.parametrize(("text", "expected"), [
    # ASCII and Latin letters weigh 1, Norwegian and Swedish included
    ("I am a Tweet", 12),
    ("Blåbærsyltetøy på Ærø, Øystein!", 31),
    ("ÆØÅ æøå ÄÖ äö", 13),
    ("A\u0301B", 2),                                    # conformance: NFC makes A + ◌́ one character
    ("A\ufb2c", 4),                                     # conformance: שּׁ normalises into 3 light characters
    # URLs count 23 however long they are
    ("http://test.com", 23),
    ("https://www.twitter.com/aloha " * 10, 240),      # conformance: "10 url string"
    ("Test https://test.com test https://test.com test.com test", 86),   # conformance: with and without scheme
    ("Sporing: https://sporing.posten.no/sporing/70712345678?lang=nb.", 9 + 23 + 1),  # the full stop is not part of it
    ("(see https://fjordkaffe.com/polarnatt)", 5 + 23 + 1), ("test.comfoo", 11),
    ("test.com", 23), ("t.co", 23), ("foo.co.jp", 23), ("komplett.no/kundeservice", 23),
    ("komplett.no", 11),                                # a one-label country domain without a path is text
    ("write to kundeservice@fjordkaffe.com", 36),        # an e-mail address is not a link
    ("randomurlrandomurlrandomurlrandomurlrandomurlrandomurlrandomurls.com", 68),  # conformance: a 64-char label
    # CJK weighs 2
    ("日本でも買えますか", 18),
    ("故人西辞黄鹤楼，烟花三月下扬州。" * 10, 320),      # conformance: 160 CJK characters
    ("저찀쯿쿿", 8),
    # An emoji sequence weighs 2 as a whole, however many code points it has
    ("H\U0001f431\u263a" + FAMILY, 7),                  # conformance
    ("\U0001f64b\U0001f3fd\U0001f468\u200d\U0001f3a4", 4),   # conformance: skin tone, ZWJ profession
    ("Unicode 10.0 emoji: \U0001f92a; \U0001f9d5; \U0001f9d5\U0001f3fe; " + ENGLAND, 34),  # conformance
    ("Unicode 9.0 emoji: \U0001f920; \U0001f483; \U0001f483\U0001f3fe", 29),                # conformance
    (FAMILY * 140, 280),                                # conformance: 140 families fit exactly
    ("\u2764\ufe0f", 2), ("\U0001f1f3\U0001f1f4", 2), ("1\ufe0f\u20e3", 2),
    ("\u00a9 2026", 6), ("\u00a9\ufe0f", 2),            # © is text (weight 1) unless VS16 makes it an emoji
    ("", 0),
])
def test_weighted_length(text: str, expected: int) -> None:
    assert weighted_length(text) == expected


@pytest.mark.parametrize(("code_point", "weight"), [
    (0, 1), (ord("ø"), 1), (4351, 1), (4352, 2), (8191, 2), (8192, 1), (8205, 1), (8206, 2), (8207, 2),
    (8208, 1), (8223, 1), (8224, 2), (8241, 2), (8242, 1), (8247, 1), (8248, 2), (0x3042, 2), (0x1F600, 2),
])
def test_code_point_weights_follow_the_v3_ranges(code_point: int, weight: int) -> None:
    assert code_point_weight(code_point) == weight


def test_the_connector_counts_with_it_and_declares_280() -> None:
    connector = XConnector.from_settings({"user_id": "1", "consumer_secret": "s"}, httpx.AsyncClient())
    assert connector.capabilities.max_length_public == MAX_WEIGHTED_LENGTH == 280
    assert connector.text_length("a" * 280) == 280
    assert connector.text_length("æ" * 279 + "日") == 281          # one CJK character tips it over
    assert connector.text_length("x" * 257 + " https://fjordkaffe.com/" + "p" * 200) == 281


def test_no_input_makes_the_count_slow() -> None:
    """A reply is counted on every keystroke's validation: no quadratic backtracking on long text."""
    started = time.perf_counter()
    assert weighted_length("https://x.com/" + "." * 9000 + "a") == 23
    assert weighted_length("a." * 5000) == 10000
    assert time.perf_counter() - started < 2.0
