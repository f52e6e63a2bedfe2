"""Account Activity webhook security: the CRC challenge and the body signature (pure functions).

Both are `base64(HMAC-SHA256(key=consumer_secret, msg))`: over the `crc_token` for the CRC
answer, over the raw body bytes, exactly as X sent them, for `x-twitter-webhooks-signature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from socialcrm.connector import HandshakeResponse, InvalidSignature, WebhookRequest

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
PREFIX = "sha256="


def digest(secret: str, message: bytes) -> str:
    """`sha256=` + base64 of the HMAC, the form X uses for both the CRC and the signature."""
    mac = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return PREFIX + base64.b64encode(mac).decode("ascii")


def crc_response(req: WebhookRequest, secret: str | None) -> HandshakeResponse | None:
    """Answer `GET ?crc_token=...` with `{"response_token": "sha256=..."}`; None if not a CRC."""
    token = req.query.get("crc_token")
    if req.method != "GET" or token is None:
        return None
    if not secret or not token:
        return HandshakeResponse(403, "crc refused: no consumer_secret configured" if not secret else "empty crc_token")
    body = json.dumps({"response_token": digest(secret, token.encode())})
    return HandshakeResponse(200, body, "application/json")


def verify_signature(req: WebhookRequest, secret: str | None) -> None:
    """InvalidSignature unless the header is the HMAC of these exact bytes (constant time)."""
    if not secret:
        raise InvalidSignature("no consumer_secret configured: cannot check X webhook signatures")
    given = req.headers.get(SIGNATURE_HEADER)
    if not given:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
    expected = digest(secret, req.body)
    if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode("ascii")):
        raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the body")
