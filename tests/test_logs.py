"""JSON logs: one object per line, request ids, and no known secret ever in the output."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from socialcrm.logs import (
    JsonFormatter,
    RedactingFormatter,
    redact,
    request_id_middleware,
)

SECRET = "EAAGm0PX4ZCpsBAKZB8sekrit"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"

#: Each shape a credential takes in the wild, with the known secret inside.
SHAPES = {
    "graph url": f"GET https://graph.facebook.com/v21.0/me/messages?access_token={SECRET}&fields=id failed",
    "query string": f"fields=id&access_token={SECRET}",
    "authorization header": f"Authorization: Bearer {SECRET}",
    "headers repr": f"{{'Content-Type': 'application/json', 'Authorization': 'Bearer {SECRET}'}}",
    "cookie": f"Cookie: socialcrm_session={SECRET}; other=1",
    "set-cookie": f"Set-Cookie: socialcrm_session={SECRET}; HttpOnly; Path=/",
    "x-hub-signature": f"X-Hub-Signature: sha1={SECRET}",
    "x-hub-signature-256": f"X-Hub-Signature-256: sha256={SECRET}",
    "twitter signature": f"x-twitter-webhooks-signature: sha256={SECRET}",
    "telegram secret header": f"X-Telegram-Bot-Api-Secret-Token: {SECRET}",
    "verify token": f"/webhooks/facebook/1?hub.mode=subscribe&hub.verify_token={SECRET}&hub.challenge=42",
    "telegram bot url": f"POST https://api.telegram.org/bot{BOT_TOKEN}/sendMessage: 502",
    "app_secret json": f'{{"app_id": "1", "app_secret": "{SECRET}"}}',
    "password json": f'{{"username": "kari", "password": "{SECRET}"}}',
    "password repr": f"{{'username': 'kari', 'password': '{SECRET}'}}",
}


def secret_of(shape: str) -> str:
    return BOT_TOKEN if shape == "telegram bot url" else SECRET


@pytest.fixture
def json_log() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("socialcrm.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_redact_removes_the_secret_and_says_so(shape: str) -> None:
    out = redact(SHAPES[shape])
    assert secret_of(shape) not in out
    assert "[redacted]" in out


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_logged_message_never_shows_the_secret(json_log, shape: str) -> None:
    logger, stream = json_log
    logger.warning("platform call failed: %s", SHAPES[shape])
    line = stream.getvalue()
    assert secret_of(shape) not in line
    assert json.loads(line)["message"].startswith("platform call failed: ")


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_logged_exception_never_shows_the_secret(json_log, shape: str) -> None:
    logger, stream = json_log
    try:
        raise RuntimeError(SHAPES[shape])
    except RuntimeError:
        logger.exception("send failed")
    entry = json.loads(stream.getvalue())
    assert secret_of(shape) not in stream.getvalue()
    assert "RuntimeError" in entry["exception"] and "Traceback" in entry["exception"]


def test_plain_text_format_is_redacted_too() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", (SHAPES["graph url"],), None)
    assert SECRET not in RedactingFormatter("%(message)s").format(record)


def test_ordinary_text_is_left_alone() -> None:
    text = "conversation 12 assigned to Kari; token expiry in 3 days (channel 4)"
    assert redact(text) == text


def test_one_json_object_per_line_with_the_fields(json_log) -> None:
    logger, stream = json_log
    logger.info("first")
    logger.error("second\nwith a newline")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "socialcrm.test_logs" and first["message"] == "first"
    assert first["time"].endswith("+00:00") and "request_id" not in first
    assert second["message"] == "second\nwith a newline"


def request_app(logger: logging.Logger) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        logger.info("handling")
        return web.Response(text="hi")

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    app = web.Application(middlewares=[request_id_middleware])
    app.router.add_get("/", hello)
    app.router.add_get("/missing", missing)
    return app


async def test_request_id_is_echoed_and_logged(json_log) -> None:
    logger, stream = json_log
    async with TestClient(TestServer(request_app(logger))) as client:
        given = await client.get("/", headers={"X-Request-Id": "abc-123"})
        made = await client.get("/", headers={"X-Request-Id": "evil\u00e9 id with spaces" * 10})
        missing = await client.get("/missing", headers={"X-Request-Id": "nf-1"})
    assert given.headers["X-Request-Id"] == "abc-123"
    generated = made.headers["X-Request-Id"]
    assert generated != "" and " " not in generated and len(generated) == 32
    assert missing.status == 404 and missing.headers["X-Request-Id"] == "nf-1"
    ids = [json.loads(line).get("request_id") for line in stream.getvalue().splitlines()]
    assert ids == ["abc-123", generated]
