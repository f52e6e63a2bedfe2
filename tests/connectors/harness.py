"""Shared connector test helpers (after Zulip's `check_webhook`): fixtures in, events out.

Test modules refer to fixtures by their literal name (`load_fixture("simulator", "dm__text")`):
test_fixtures_used.py finds unused fixtures by scanning the test sources for those names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path

from socialcrm.connector import Connector, NormalizedEvent, WebhookRequest

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS = ROOT / "connectors"
TESTS = Path(__file__).resolve().parent

#: (connector key, fixture name) pairs loaded in this run; informative, the meta-test scans sources.
USED: set[tuple[str, str]] = set()


def fixture_path(connector_key: str, name: str) -> Path:
    return CONNECTORS / connector_key / "fixtures" / f"{name}.json"


def load_fixture(connector_key: str, name: str) -> bytes:
    """The raw bytes: signatures are over exactly what the platform sent."""
    USED.add((connector_key, name))
    return fixture_path(connector_key, name).read_bytes()


def all_fixtures() -> list[Path]:
    return sorted(CONNECTORS.glob("*/fixtures/*.json"))


def sign_simulator(secret: str, body: bytes) -> dict[str, str]:
    """Headers the simulated platform sends; computed here independently of the connector."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Simulator-Signature": f"sha256={digest}"}


def webhook_request(body: bytes, headers: Mapping[str, str], *, method: str = "POST",
                    query: Mapping[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest.build(method, "/webhooks/test", headers, query, body)


def run_webhook(connector: Connector, body: bytes, headers: Mapping[str, str]) -> list[NormalizedEvent]:
    """What the webhook endpoint does after the handshake: verify, then parse."""
    request = webhook_request(body, headers)
    assert connector.handshake(request) is None, "a signed POST is not a handshake"
    connector.verify(request)
    return connector.parse(request)


def without_raw(events: list[NormalizedEvent]) -> list[NormalizedEvent]:
    return [dataclasses.replace(event, raw=None) for event in events]


def check_webhook(connector: Connector, body: bytes, headers: Mapping[str, str],
                  expected: list[NormalizedEvent]) -> list[NormalizedEvent]:
    """Verify and parse a delivery and compare every field but `raw`; returns the events."""
    events = run_webhook(connector, body, headers)
    got, want = without_raw(events), without_raw(expected)
    assert len(got) == len(want), f"{len(got)} events, expected {len(want)}: {[e.external_id for e in got]}"
    for actual, wanted in zip(got, want):
        assert actual == wanted, f"{wanted.external_id}:\n  got      {actual}\n  expected {wanted}"
    for event in events:
        assert event.created_at.tzinfo is not None, f"{event.external_id}: naive created_at"
        assert event.raw is not None, f"{event.external_id}: raw payload not kept"
    return events
