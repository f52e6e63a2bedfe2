"""Burst and crash: signed deliveries over three server processes on one PostgreSQL database.

Every unique event is stored exactly once, whatever the redeliveries, the order, or a process
killed mid-burst; every delivery is answered 2xx in the end (the sender retries, as Meta does)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from socialcrm import models
from tests.load.stack import burst, processes, rows, run_async, send_all, server, simulator_channel, wait_for

pytestmark = pytest.mark.timeout(900)   # real processes under load: bounded, but not by the 120 s default

msg_t, receipt_t = models.Message.__table__, models.Receipt.__table__
CONCURRENCY = 100


def stored_counts(db_url: str, channel_id: int) -> Counter[str]:
    found = rows(db_url, sa.select(msg_t.c.external_id, sa.func.count()).where(
        msg_t.c.channel_id == channel_id, msg_t.c.direction == "in").group_by(msg_t.c.external_id))
    return Counter({external_id: n for external_id, n in found})


def pending_receipts(db_url: str) -> int:
    return rows(db_url, sa.select(sa.func.count()).select_from(receipt_t).where(receipt_t.c.status == "pending"))[0][0]


def all_ingested(db_url: str, channel_id: int, unique: int) -> bool:
    return pending_receipts(db_url) == 0 and len(stored_counts(db_url, channel_id)) >= unique


def test_10000_deliveries_with_30_percent_duplicates_over_3_processes(pg_url: str, tmp_path: Path) -> None:
    channel_id = simulator_channel(pg_url)
    deliveries = burst(unique=7_000, duplicates=3_000, prefix="burst")
    servers = [server(pg_url, tmp_path, f"serve-{n}") for n in range(3)]
    with processes(*servers):
        urls = [f"{s.base}/webhooks/simulator/{channel_id}" for s in servers]
        t0 = time.monotonic()
        results = run_async(send_all(deliveries, urls, CONCURRENCY, deadline_s=400))
        elapsed = time.monotonic() - t0
        # A connection the sender itself lost (status 0: no answer at all) is sent again, as a
        # platform does; what the servers answered must all be 2xx.
        lost = [d for d, status in results if status == 0]
        resent = run_async(send_all(lost, urls, CONCURRENCY, deadline_s=120)) if lost else []
        wait_for("every receipt ingested", lambda: all_ingested(pg_url, channel_id, 7_000), timeout=120, every=0.5)
    statuses = Counter(status for _, status in results)
    print(f"\nburst: {len(results)} deliveries in {elapsed:.1f} s ({len(results) / elapsed:.0f}/s), "
          f"statuses {dict(statuses)}, {len(lost)} resent after the sender lost the connection")
    assert len(results) == 10_000 and set(statuses) <= {0, 200} and len(lost) < 100
    assert all(status == 200 for _, status in resent)
    counts = stored_counts(pg_url, channel_id)
    assert set(counts) == {d.external_id for d in deliveries}         # nothing lost
    assert set(counts.values()) == {1}                               # nothing stored twice


def test_a_process_killed_mid_burst_loses_and_duplicates_nothing(pg_url: str, tmp_path: Path) -> None:
    channel_id = simulator_channel(pg_url)
    deliveries = burst(unique=3_500, duplicates=1_500, prefix="crash")
    servers = [server(pg_url, tmp_path, f"serve-{n}") for n in range(3)]
    victim = servers[1]
    with processes(*servers):
        urls = [f"{s.base}/webhooks/simulator/{channel_id}" for s in servers]

        def kill_at_a_third(done: int) -> None:
            if done == len(deliveries) // 3:
                victim.kill()

        results = run_async(send_all(deliveries, urls, CONCURRENCY, deadline_s=240, on_progress=kill_at_a_third))
        unanswered = [d for d, status in results if not 200 <= status < 300]
        left_pending = pending_receipts(pg_url)      # acknowledged by the victim, not yet ingested
        victim.start()                               # same port: recover() re-queues its pending receipts
        retries = 0
        while unanswered and retries < 5:            # the platform resends what got no 2xx
            retries += 1
            again = run_async(send_all(unanswered, urls, CONCURRENCY, deadline_s=120))
            unanswered = [d for d, status in again if not 200 <= status < 300]
        wait_for("every receipt ingested after the restart", lambda: all_ingested(pg_url, channel_id, 3_500),
                 timeout=120, every=0.5)
    failed_first = sum(1 for _, status in results if not 200 <= status < 300)
    print(f"\ncrash: {len(results)} deliveries, {failed_first} unanswered while the victim was down, "
          f"{retries} resend rounds, {left_pending} receipts pending at the kill")
    assert failed_first > 0 and not unanswered
    counts = stored_counts(pg_url, channel_id)
    assert set(counts) == {d.external_id for d in deliveries}          # lost: 0
    assert set(counts.values()) == {1}                                # duplicated: 0
    assert pending_receipts(pg_url) == 0
