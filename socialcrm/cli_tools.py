"""`socialcrm parse-webhook` and `socialcrm poll-once`: see what a connector makes of a platform.

Admins use them to find out why a delivery was not ingested; nothing is stored. Exit codes:
0 done, 2 the input or the platform said no (one line on stderr), 3 rate limited.
Secret settings never appear in the output, not even in error messages.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import httpx
from pydantic import SecretBytes, SecretStr, ValidationError

from socialcrm.connector import (
    Connector,
    ConnectorError,
    InvalidSignature,
    MalformedPayload,
    NormalizedEvent,
    RateLimited,
    UnsupportedEvent,
    WebhookRequest,
)
from socialcrm.registry import Registry

POLL_TIMEOUT = 10.0
#: Setting names treated as secret even when a connector forgot to declare them SecretStr.
SECRET_NAMES = re.compile(r"secret|token|password|passwd|private|api_key|apikey|credential", re.IGNORECASE)


class CommandEnded(Exception):
    """Ends a command early with `exit_code`, one line for stderr, and maybe output for stdout."""

    def __init__(self, line: str, exit_code: int = 2, output: Any = None) -> None:
        super().__init__(line)
        self.exit_code = exit_code
        self.output = output


def add_commands(subparsers: Any) -> None:
    """Register parse-webhook and poll-once on the main CLI's subparsers."""
    parse = subparsers.add_parser("parse-webhook", help="verify and parse a saved webhook body, print its events")
    parse.add_argument("connector", help="connector key, e.g. simulator")
    parse.add_argument("--body", required=True, help="file with the raw body as received (- for stdin)")
    parse.add_argument("--header", action="append", default=[], type=header_pair, help="'Name: value' (repeatable)")
    parse.add_argument("--query", action="append", default=[], type=setting_pair, help="key=value (repeatable)")
    parse.add_argument("--method", default="POST")
    _add_settings(parse)
    parse.set_defaults(func=run_parse_webhook)
    poll = subparsers.add_parser("poll-once", help="fetch one page of events from the platform, print it")
    poll.add_argument("connector", help="connector key, e.g. simulator")
    poll.add_argument("--cursor", help="where the previous poll stopped")
    _add_settings(poll)
    poll.set_defaults(func=run_poll_once)


def _add_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--setting", action="append", default=[], type=setting_pair,
                        help="a channel setting as key=value (repeatable)")


def header_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def setting_pair(text: str) -> tuple[str, str]:
    # Never echo the text back: a setting may be a secret.
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError("expected key=value")
    return key.strip(), value


# -- commands ---------------------------------------------------------------------------

def run_parse_webhook(args: argparse.Namespace) -> int:
    return _run(args, _parse_webhook)


def run_poll_once(args: argparse.Namespace) -> int:
    return _run(args, _poll_once)


Command = Callable[[type[Connector], dict[str, str], argparse.Namespace], Any]


def _run(args: argparse.Namespace, command: Command) -> int:
    """Find the connector, run the command, print its output or its one line."""
    settings, hidden = dict(args.setting), []
    try:
        cls = find_connector(args.connector)
        hidden = secret_values(cls, settings)
        output = command(cls, settings, args)
    except CommandEnded as exc:
        if exc.output is not None:
            print_json(exc.output)
        print(redact(" ".join(str(exc).split()), hidden), file=sys.stderr)
        return exc.exit_code
    print_json(output)
    return 0


def _parse_webhook(cls: type[Connector], settings: dict[str, str], args: argparse.Namespace) -> Any:
    request = WebhookRequest.build(args.method, f"/webhooks/{cls.key}", dict(args.header),
                                   dict(args.query), read_body(args.body))
    events = asyncio.run(_verify_and_parse(cls, settings, request))
    return [event_to_json(event) for event in events]


def _poll_once(cls: type[Connector], settings: dict[str, str], args: argparse.Namespace) -> Any:
    events, cursor = asyncio.run(_poll(cls, settings, args.cursor))
    return {"events": [event_to_json(event) for event in events], "cursor": cursor}


async def _verify_and_parse(cls: type[Connector], settings: dict[str, str],
                            request: WebhookRequest) -> list[NormalizedEvent]:
    """What the webhook endpoint does after its handshake check; stores nothing."""
    async with httpx.AsyncClient() as http:
        connector = build(cls, settings, http)
        try:
            connector.verify(request)
            return connector.parse(request)
        except InvalidSignature as exc:
            raise CommandEnded(f"invalid signature: {exc}") from exc
        except MalformedPayload as exc:
            raise CommandEnded(f"malformed payload: {exc}") from exc
        except UnsupportedEvent as exc:  # answered 200 by the endpoint: not an error
            raise CommandEnded(f"unsupported: {exc}", exit_code=0, output=[]) from exc
        except ConnectorError as exc:
            raise CommandEnded(f"not ingested: {exc}") from exc


async def _poll(cls: type[Connector], settings: dict[str, str],
                cursor: str | None) -> tuple[list[NormalizedEvent], str | None]:
    async with httpx.AsyncClient(timeout=POLL_TIMEOUT) as http:
        connector = build(cls, settings, http)
        try:
            return await connector.poll(cursor)
        except RateLimited as exc:
            raise CommandEnded(f"rate limited: retry after {exc.retry_after:g} s ({exc})", exit_code=3) from exc
        except ConnectorError as exc:
            raise CommandEnded(f"poll failed ({type(exc).__name__}): {exc}") from exc
        except NotImplementedError as exc:
            raise CommandEnded(f"{cls.key} cannot poll") from exc


def find_connector(key: str) -> type[Connector]:
    try:
        return Registry.from_entry_points().get(key)
    except KeyError as exc:
        raise CommandEnded(str(exc.args[0])) from exc


def build(cls: type[Connector], settings: Mapping[str, str], http: httpx.AsyncClient) -> Connector:
    """Validate the settings; the error names the bad fields, never their values."""
    try:
        return cls.from_settings(settings, http)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                             for e in exc.errors(include_url=False, include_input=False, include_context=False))
        raise CommandEnded(f"invalid settings for {cls.key}: {problems}") from exc


def read_body(path: str) -> bytes:
    """The exact bytes: signatures are over them, so no decoding or newline translation."""
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise CommandEnded(f"cannot read body: {exc.strerror or exc}: {path}") from exc


# -- output -----------------------------------------------------------------------------

def event_to_json(event: NormalizedEvent) -> dict[str, Any]:
    """An event as JSON-ready data with DESIGN §4's field names; `raw` is left out."""
    return {
        "kind": event.kind,
        "public": event.public,
        "external_id": event.external_id,
        "thread_external_id": event.thread_external_id,
        "in_reply_to_external_id": event.in_reply_to_external_id,
        "author": dataclasses.asdict(event.author),
        "text": event.text,
        "created_at": iso_utc(event.created_at),
        "attachments": [dataclasses.asdict(a) for a in event.attachments],
        "target_external_id": event.target_external_id,
        "detail": event.detail,
        "account_id": event.account_id,
    }


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z, keeping milliseconds (and microseconds when there are any)."""
    if moment.tzinfo is None:  # the contract says aware; do not guess a local zone if one is not
        moment = moment.replace(tzinfo=UTC)
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def print_json(data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    try:
        print(text)
    except UnicodeEncodeError:  # a terminal that cannot show it still gets every character, escaped
        print(json.dumps(data, ensure_ascii=True, indent=2, default=str))


def secret_values(cls: type[Connector], settings: Mapping[str, str]) -> list[str]:
    """Values given for the connector's secret fields (and for anything named like a secret)."""
    fields = cls.Settings.model_fields
    return [value for key, value in settings.items() if value and (
        (key in fields and _is_secret(fields[key].annotation)) or SECRET_NAMES.search(key))]


def _is_secret(annotation: Any) -> bool:
    return annotation in (SecretStr, SecretBytes) or any(_is_secret(a) for a in get_args(annotation))


def redact(line: str, secrets: Iterable[str]) -> str:
    """Blot out secrets; a very short one only where it stands alone, or no word would survive."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            line = line.replace(secret, "***")
        else:
            line = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", "***", line)
    return line
