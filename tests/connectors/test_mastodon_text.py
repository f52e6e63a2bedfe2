"""Mastodon status HTML -> plain text, and the length Mastodon counts: pure functions, data in, text out."""

from __future__ import annotations

import httpx
import pytest

from connectors.mastodon import MastodonConnector
from connectors.mastodon.text import grapheme_count, html_to_text, status_length

# The examples of docs.joinmastodon.org (methods/notifications, api/guidelines "Formatting").
DOCS_MENTION = ('<p><span class="h-card"><a href="https://mastodon.social/@trwnh" class="u-url mention">'
                '@<span>trwnh</span></a></span> sup!</p>')
DOCS_LINK = """<a href="https://example.com/page/that/is/very/long">
  <span class="invisible">https://</span>
  <span class="ellipsis">example.com/page</span>
  <span class="invisible">/that/is/very/long</span>
</a>"""


@pytest.mark.parametrize(("html", "text"), [
    (DOCS_MENTION, "@trwnh sup!"),
    (DOCS_LINK, "https://example.com/page/that/is/very/long"),
    (('<p>Tracking: <a href="https://nordlys.example/o/48213" rel="nofollow noopener" target="_blank">'
      '<span class="invisible">https://</span><span class="">nordlys.example/o/48213</span>'
      '<span class="invisible"></span></a></p>'), "Tracking: https://nordlys.example/o/48213"),
    ("<p>First paragraph.</p><p>Second one.</p>", "First paragraph.\n\nSecond one."),
    ("<p>line one<br>line two<br />line three</p>", "line one\nline two\nline three"),
    ("<p>a<br><br>b</p><p></p><p>c</p>", "a\n\nb\n\nc"),
    ("<p>Fish &amp; chips &lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; it&#39;s &#x1F6B2;</p>",
     'Fish & chips <script>alert(1)</script> "quoted" it\'s 🚲'),
    ("<p>&amp;lt;b&amp;gt; stays escaped once</p>", "&lt;b&gt; stays escaped once"),
    ('<p>Love it 😍🔥 👩‍👩‍👧 🇳🇴 :blobcat:</p>', "Love it 😍🔥 👩‍👩‍👧 🇳🇴 :blobcat:"),
    ('<p><a href="https://social.example/tags/sykkel" class="mention hashtag" rel="tag">#<span>sykkel</span></a></p>',
     "#sykkel"),
    ("mention without paragraphs <br> from another server", "mention without paragraphs\nfrom another server"),
    ("<p>  two  spaces  kept </p>", "two  spaces  kept"),
    ("<blockquote><p>quoted</p></blockquote><ul><li>one</li><li>two</li></ul>", "quoted\n\none\ntwo"),
    ("<pre><code>def f():\n    return 1</code></pre>", "def f():\n    return 1"),
    ("<p>safe</p><script>alert(1)</script><style>p{}</style>", "safe"),
    ("", ""),
])
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_unclosed_and_broken_markup_keeps_the_words() -> None:
    assert html_to_text("<p>unclosed <a href='x'>link <span>text") == "unclosed link text"
    assert html_to_text("<p>1 < 2 and 3 > 2</p>") == "1 < 2 and 3 > 2"


# -- length as Mastodon counts it ----------------------------------------------------------------

@pytest.mark.parametrize(("text", "length"), [
    ("hello", 5),
    ("https://example.com", 23),                                           # short URLs count 23 too
    ("see https://nordlys.example/orders/48213/tracking?lang=en&x=1.", 4 + 23 + 1),  # the full stop is text
    ("http://a.example/x and https://b.example/y", 23 + 5 + 23),
    ("nordlys.example/orders has no scheme", 36),                          # only http(s):// links
    ("@ingrid@fosstodon.example hei", len("@ingrid hei")),                 # the domain is not counted
    ("@jwalker hei", 12),
    ("mail ingrid@fosstodon.example", 29),                                 # not a mention: no leading @
    ("👩‍👩‍👧🇳🇴é", 3), ("e\u0301", 1), ("\r\n", 1), ("😍🔥", 2), ("👍🏽", 1),
])
def test_status_length(text: str, length: int) -> None:
    assert status_length(text) == length


def test_graphemes_of_flags_pair_up() -> None:
    assert grapheme_count("🇳🇴🇸🇪") == 2 and grapheme_count("🇳🇴🇸") == 2


def test_the_connector_counts_like_mastodon() -> None:
    connector = MastodonConnector.from_settings({"api_base_url": "https://social.example", "access_token": "t"},
                                                httpx.AsyncClient())
    reply = "@svenne@mastodon.example Sporing: https://nordlys.example/track/48213-8831-ABCD-long 🚲"
    assert connector.text_length(reply) == len("@svenne Sporing: ") + 23 + len(" 🚲")
