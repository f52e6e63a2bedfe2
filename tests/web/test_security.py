"""Headers on every response, and templates that the Content-Security-Policy can live with."""

from __future__ import annotations

import re

from socialcrm.web.app import asset_folder
from socialcrm.web.middleware import SECURITY_HEADERS

CSP = SECURITY_HEADERS["Content-Security-Policy"]


async def test_security_headers_on_pages_errors_static_and_webhooks(signed_in, browser, world) -> None:
    b = await signed_in("agent")
    anonymous = browser()
    responses = [
        (await b.get("/"))[0],
        (await b.get("/conversations/424242"))[0],                 # our 404 page
        (await anonymous.get("/login"))[0],
        (await anonymous.get("/static/app.css"))[0],
        (await anonymous.get("/static/nope.css"))[0],              # aiohttp's own 404
        await anonymous.session.post("/webhooks/simulator", data=b"{}"),
    ]
    for resp in responses:
        assert resp.headers.get("Content-Security-Policy") == CSP, resp.url
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", resp.url
        assert resp.headers.get("Referrer-Policy") == "same-origin", resp.url
    assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "unsafe" not in CSP


async def test_pages_are_not_cached(signed_in, world) -> None:
    resp, _ = await (await signed_in("agent")).get("/")
    assert resp.headers["Cache-Control"] == "no-store"


async def test_unexpected_errors_reveal_nothing(signed_in, world, monkeypatch) -> None:
    from socialcrm import inbox

    async def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(inbox, "view", boom)
    resp, html = await (await signed_in("agent")).get("/")
    assert resp.status == 500
    assert "secret internal detail" not in html and "Something went wrong" in html


def test_templates_have_no_inline_script_or_style() -> None:
    """The CSP blocks inline code; this catches it before a browser silently ignores it."""
    offenders = []
    for path in asset_folder("templates").rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text):
            offenders.append(f"{path.name}: inline <script>")
        if re.search(r"\sstyle\s*=", text) or "<style" in text:
            offenders.append(f"{path.name}: inline style")
        if re.search(r"\son[a-z]+\s*=", text) or "hx-on" in text or "javascript:" in text:
            offenders.append(f"{path.name}: inline event handler")
        if "|safe" in text.replace(" ", ""):
            offenders.append(f"{path.name}: |safe")
    assert offenders == []


def test_htmx_is_vendored_and_pinned() -> None:
    static = asset_folder("static")
    versions = (static / "vendor" / "VERSIONS.txt").read_text()
    assert "htmx.org@2." in versions and "htmx-ext-sse@2." in versions
    assert (static / "vendor" / "htmx.min.js").stat().st_size > 10_000
    assert "defineExtension('sse'" in (static / "vendor" / "sse.js").read_text()
    base = (asset_folder("templates") / "base.html").read_text()
    assert '"includeIndicatorStyles": false' in base
    assert "https://" not in base, "no CDN"
