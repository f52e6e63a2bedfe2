"""Meta webhook plumbing: the hub.challenge handshake and the X-Hub-Signature-256 check.

Meta signs the body exactly as it sent it (non-ASCII escaped as \\uXXXX): the HMAC is always
computed over the raw bytes, never over re-serialised JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from socialcrm.connector import (
    HandshakeResponse,
    InvalidSignature,
    MalformedPayload,
    WebhookRequest,
)
from socialcrm.payload import clean_payload as clean_json  # noqa: F401  (part of this module's API)

SIGNATURE_HEADER = "X-Hub-Signature-256"
# Lone surrogates (a JSON "\\ud83d" escape cut in half) cannot be encoded as UTF-8 and NUL breaks
# PostgreSQL text: clean_json turns both into U+FFFD so nothing downstream has to care.


def handshake(req: WebhookRequest, verify_token: str) -> HandshakeResponse | None:
    """Answer `GET ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`, or None."""
    if req.method != "GET" or "hub.challenge" not in req.query:
        return None
    given = req.query.get("hub.verify_token", "")
    if req.query.get("hub.mode") != "subscribe" or not verify_token or not _same(given, verify_token):
        return HandshakeResponse(403, "verify token mismatch")
    return HandshakeResponse(200, req.query["hub.challenge"])


def verify_signature(req: WebhookRequest, app_secret: str) -> None:
    given = req.headers.get(SIGNATURE_HEADER)
    if not app_secret:  # an empty key is a key anyone can sign with
        raise InvalidSignature("no app secret is configured")
    if not given:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
    expected = "sha256=" + hmac.new(app_secret.encode(), req.body, hashlib.sha256).hexdigest()
    if not _same(given.strip().lower(), expected):
        raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the body")


def parse_json_object(body: bytes, expected_object: str) -> dict[str, Any]:
    """The decoded body, checked to be the product's envelope (`object` and an `entry` list)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedPayload(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
        raise MalformedPayload("body is not an object with an 'entry' list")
    if data.get("object") != expected_object:
        raise MalformedPayload(f"object is {data.get('object')!r}, expected {expected_object!r}")
    return data



def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))
