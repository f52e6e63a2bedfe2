"""Crash while sending: the platform accepted a reply, the dispatcher was killed before it
recorded that. After the restart the reply is reconciled at once (not after the 2-minute lease):
on PostgreSQL a "sending" entry of a channel whose lock nobody holds is an orphan.

* The simulator honours Idempotency-Key (as Mastodon does): the re-send with the same key is
  answered with the first reply, so the customer gets it once.
* WhatsApp's Cloud API has no idempotency key and does not echo API sends: whether the first
  request went out cannot be known, so delivery there is at-least-once, documented as at most
  one duplicate per reply that was in flight when the process died.
"""

from __future__ import annotations

import pytest
from pathlib import Path

from tests.load.stack import (
    add_channel,
    fake_platform,
    outbox_statuses,
    platform_post,
    platform_state,
    processes,
    queue_replies,
    run_async,
    server,
    simulator_channel,
    wait_for,
    whatsapp_settings,
)

pytestmark = pytest.mark.timeout(300)   # real processes under load: bounded, but not by the 120 s default


def test_a_dispatcher_killed_after_the_platform_accepted(pg_url: str, tmp_path: Path) -> None:
    platform = fake_platform(tmp_path)
    with processes(platform):
        sim = simulator_channel(pg_url, api_base_url=platform.base, token="tok-sim")
        wa = run_async(add_channel(pg_url, "whatsapp", "WhatsApp", whatsapp_settings(platform.base, "1001")))
        sim_ids = run_async(queue_replies(pg_url, sim, 1, lambda i: f"sim-cust-{i}"))
        wa_ids = run_async(queue_replies(pg_url, wa, 1, lambda i: f"4790000{i:03d}"))
        platform_post(platform, "/_faults", {"kind": "simulator", "account": "tok-sim", "faults": ["stall"]})
        platform_post(platform, "/_faults", {"kind": "whatsapp", "account": "1001", "faults": ["stall"]})
        dispatcher = server(pg_url, tmp_path, "dispatcher", scheduler=True)
        try:
            dispatcher.start()

            def both_accepted_and_stalled() -> bool:
                return sum(1 for e in platform_state(platform)["log"] if e["outcome"] == "stalled") == 2

            wait_for("both replies accepted by the platform", both_accepted_and_stalled, timeout=60)
            dispatcher.kill()                                   # accepted, not yet recorded
            assert outbox_statuses(pg_url, sim_ids + wa_ids) == {"sending": 2}
            platform_post(platform, "/_release", {})
            dispatcher.start()                                  # the restart
            wait_for("both replies reconciled", lambda: outbox_statuses(pg_url, sim_ids + wa_ids) == {"sent": 2},
                     timeout=60)                                 # well inside the 120 s lease
        finally:
            dispatcher.stop()
        state = platform_state(platform)
    delivered = state["delivered"]
    assert len(delivered["simulator/tok-sim"]) == 1                                # the key kept it to one
    assert [e["outcome"] for e in state["log"] if e["kind"] == "simulator"] == ["accepted", "stalled", "repeat"]
    assert 1 <= len(delivered["whatsapp/1001"]) <= 2                               # at-least-once, ≤ 1 duplicate
    print(f"\ncrash while sending: simulator delivered {len(delivered['simulator/tok-sim'])}x, "
          f"WhatsApp delivered {len(delivered['whatsapp/1001'])}x (documented at-least-once)")
