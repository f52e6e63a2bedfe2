"""Logs an operator can ship anywhere: one JSON object per line, request ids, secrets redacted.

Tokens reach log lines in ways nobody plans for: an httpx error quoting a Graph URL with
`access_token=`, a Telegram URL with the bot token in its path, a repr of webhook headers, an
exception from a settings dict. So redaction runs on the *formatted* text (message and
traceback) in the formatter, the last place every record passes, instead of trusting callers.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Handler

REDACTED = "[redacted]"
REQUEST_ID_HEADER = "X-Request-Id"
#: A caller's id is echoed into our logs and headers, so only short plain tokens are taken.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
HANDLER_NAME = "socialcrm"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

request_id_var: ContextVar[str | None] = ContextVar("socialcrm_request_id", default=None)

_QUERY_NAMES = r"access_token|input_token|hub\.verify_token|client_secret|appsecret_proof|app_secret|password"
_HEADER_NAMES = (r"set-cookie|cookie|authorization|proxy-authorization|x-hub-signature-256|x-hub-signature"
                 r"|x-twitter-webhooks-signature|x-telegram-bot-api-secret-token|x-simulator-signature")
_JSON_NAMES = (r"app_secret|password|access_token|client_secret|secret_token|bot_token|api_token"
               r"|webhook_secret|verify_token|refresh_token")
#: (pattern, replacement); order matters only in that each one leaves "[redacted]" behind.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # "app_secret": "..." / 'password': '...' (JSON and Python reprs), quoted values with escapes.
    (re.compile(rf"""(["'](?:{_JSON_NAMES})["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2""", re.IGNORECASE), rf"\1\2{REDACTED}\2"),
    # "password": 12345 or null-free bare values in JSON.
    (re.compile(rf"""(["'](?:{_JSON_NAMES})["']\s*:\s*)(?!["'\s])[^,}}\]\s]+""", re.IGNORECASE), rf"\1{REDACTED}"),
    # Header lines and header dict reprs: `Cookie: a=b; c=d`, `'Authorization': 'Bearer x'`.
    (re.compile(rf"""(\b(?:{_HEADER_NAMES})["']?\s*[:=]\s*["']?)[^"'\r\n]+""", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), rf"\1 {REDACTED}"),
    # Query strings and form bodies: ?access_token=...&hub.verify_token=...
    (re.compile(rf"((?<![A-Za-z0-9_])(?:{_QUERY_NAMES})=)[^&\s\"'#]+", re.IGNORECASE), rf"\1{REDACTED}"),
    # Telegram puts the bot token in the URL path: /bot123456:AA.../getMe
    (re.compile(r"/bot\d+:[A-Za-z0-9_-]+"), f"/bot{REDACTED}"),
    # A bare Telegram token anywhere else (digits, colon, ~35 url-safe characters).
    (re.compile(r"\b\d{6,}:[A-Za-z0-9_-]{30,}"), REDACTED),
)


def redact(text: str) -> str:
    """`text` with every known credential shape replaced by "[redacted]"."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if (request_id := request_id_var.get()) is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


class RedactingFormatter(logging.Formatter):
    """The plain-text format, redacted the same way (the default must not leak either)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_json_logging(level: str | int = "INFO") -> None:
    """Route every logger to stderr as JSON lines; replaces handlers set up before."""
    _install(JsonFormatter(), level)


def configure_text_logging(level: str | int = "INFO") -> None:
    """The human format (`time LEVEL logger: message`), redacted."""
    _install(RedactingFormatter(TEXT_FORMAT), level)


def _install(formatter: logging.Formatter, level: str | int) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)   # ours only: others' handlers (pytest's capture) stay
    root.addHandler(handler)
    root.setLevel(level)


def accepted_request_id(value: str | None) -> str:
    """The caller's X-Request-Id when it is a short plain token, else a fresh one."""
    if value and SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tag every log line of this request with one id and echo it, so a user's report can be found."""
    request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
    token = request_id_var.set(request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    finally:
        request_id_var.reset(token)
    if not response.prepared:   # a stream (SSE) already sent its headers
        response.headers[REQUEST_ID_HEADER] = request_id
    return response
