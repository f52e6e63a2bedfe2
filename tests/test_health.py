"""Each health signal and warning, from data built through the models at fixed times."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from socialcrm import health, ingest, models
from socialcrm.channels import set_status
from socialcrm.errors import AuthFailed
from tests.support import T0, add_team_and_channel, ev, running_core

MIN = timedelta(minutes=1)
channel_t, cursor_t = models.Channel.__table__, models.PollCursor.__table__
receipt_t, outbox_t, message_t = models.Receipt.__table__, models.OutboxEntry.__table__, models.Message.__table__


@pytest.fixture
async def core(database_url: str, tmp_path):
    async with running_core(database_url, data_dir=tmp_path) as core:
        yield core


@pytest.fixture
async def channel(core) -> int:
    return await add_team_and_channel(core)


async def inbound(core, channel_id: int, count: int, every: timedelta, last_at=T0, prefix: str = "m") -> None:
    """`count` customer messages, `every` apart, the last at `last_at`; the channel's last event then."""
    loaded = await core.channels.get(channel_id)
    events = [ev("message", f"{prefix}{i}", "cust-1", at=last_at - (count - 1 - i) * every) for i in range(count)]
    async with core.engine.begin() as conn:
        await ingest.apply(conn, loaded.info, events)
        await conn.execute(channel_t.update().where(channel_t.c.id == channel_id).values(last_event_at=last_at))


async def one(core, channel_id: int, now) -> health.ChannelHealth:
    return next(h for h in await health.channel_health(core.engine, now) if h.channel_id == channel_id)


def test_usual_gap_is_the_median_gap() -> None:
    times = [T0, T0 + 10 * MIN, T0 + 20 * MIN, T0 + 80 * MIN]   # gaps 10, 10, 60
    assert health.usual_gap(list(reversed(times))) == 10 * MIN
    assert health.usual_gap([T0]) is None


def test_silence_limit_is_three_gaps_but_at_least_an_hour() -> None:
    assert health.silence_limit(10 * MIN) == timedelta(hours=1)
    assert health.silence_limit(40 * MIN) == timedelta(hours=2)


async def test_last_event_and_usual_gap(core, channel: int) -> None:
    await inbound(core, channel, 12, 10 * MIN)
    h = await one(core, channel, T0 + 5 * MIN)
    assert h.last_event_at == T0
    assert h.usual_gap == 10 * MIN and h.inbound_sampled == 12
    assert h.warnings == []


async def test_a_channel_quiet_for_longer_than_usual_warns(core, channel: int) -> None:
    await inbound(core, channel, 12, 10 * MIN)
    assert not any("No events" in w for w in (await one(core, channel, T0 + 59 * MIN)).warnings)
    warnings = (await one(core, channel, T0 + 61 * MIN)).warnings
    assert any(w.startswith("No events for 1 h 1 min") and "every 10 min" in w for w in warnings)


async def test_a_quiet_channel_needs_a_history_before_it_warns(core, channel: int) -> None:
    await inbound(core, channel, 9, 10 * MIN)
    assert (await one(core, channel, T0 + timedelta(days=2))).warnings == []


async def test_the_usual_gap_looks_at_the_last_50_messages_only(core, channel: int) -> None:
    # All 90: the median gap would be 5 h; the newest 50: 29 one-minute gaps of 49.
    await inbound(core, channel, 60, timedelta(hours=5), last_at=T0 - timedelta(days=1), prefix="old")
    await inbound(core, channel, 30, MIN)
    h = await one(core, channel, T0)
    assert h.inbound_sampled == 50 and h.usual_gap == MIN


async def test_poll_success_lag_and_error(core, channel: int) -> None:
    async with core.engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == channel).values(poll_enabled=True))
        await conn.execute(cursor_t.insert().values(channel_id=channel, cursor="7", last_success_at=T0,
                                                    last_error="Simulated platform failed (HTTP 502)", failures=3))
    h = await one(core, channel, T0 + 7 * MIN)
    assert h.last_poll_at == T0 and h.poll_lag == 7 * MIN
    assert h.last_poll_error == "Simulated platform failed (HTTP 502)"
    assert "Last poll failed: Simulated platform failed (HTTP 502)" in h.warnings


async def test_no_poll_lag_for_a_channel_that_does_not_poll(core, channel: int) -> None:
    async with core.engine.begin() as conn:
        await conn.execute(cursor_t.insert().values(channel_id=channel, last_success_at=T0, last_error=""))
    h = await one(core, channel, T0 + 7 * MIN)
    assert h.last_poll_at == T0 and h.poll_lag is None and h.warnings == []


async def test_webhook_deliveries_of_the_last_hour_by_status(core, channel: int) -> None:
    rows = [("processed", 5), ("processed", 50), ("failed", 10), ("pending", 1), ("processed", 61), ("failed", 90)]
    async with core.engine.begin() as conn:
        for status, minutes_ago in rows:
            await conn.execute(receipt_t.insert().values(connector="simulator", channel_id=channel, headers={},
                                                         body=b"{}", status=status,
                                                         received_at=T0 - minutes_ago * MIN))
    h = await one(core, channel, T0)
    assert h.deliveries == {"processed": 2, "failed": 1, "pending": 1}


async def outbound(core, channel_id: int, rows: list[dict[str, Any]]) -> None:
    """Outbox entries, each for its own outbound message in one conversation."""
    await inbound(core, channel_id, 1, MIN, last_at=T0 - timedelta(days=1))
    async with core.engine.begin() as conn:
        conv = await conn.scalar(message_t.select().with_only_columns(message_t.c.conversation_id).limit(1))
        for i, row in enumerate(rows):
            message_id = (await conn.execute(message_t.insert().values(
                conversation_id=conv, channel_id=channel_id, direction="out", text=f"reply {i}",
                status="queued", attachments=[], reactions={}, created_at=row["created_at"],
            ).returning(message_t.c.id))).scalar_one()
            await conn.execute(outbox_t.insert().values(message_id=message_id, channel_id=channel_id, payload={},
                                                        next_attempt_at=row["created_at"], **row))


async def test_outbox_pending_and_its_oldest_age(core, channel: int) -> None:
    await outbound(core, channel, [{"status": "pending", "created_at": T0 - 30 * MIN},
                                   {"status": "sending", "created_at": T0 - 5 * MIN},
                                   {"status": "sent", "created_at": T0 - 90 * MIN, "sent_at": T0 - 89 * MIN}])
    h = await one(core, channel, T0)
    assert h.outbox_pending == 2 and h.oldest_pending_age == 30 * MIN
    assert h.sends_hour == 0 and h.error_rate is None


async def test_failing_sends_warn_above_20_percent_with_5_attempts(core, channel: int) -> None:
    sent = [{"status": "sent", "created_at": T0 - 20 * MIN, "sent_at": T0 - 19 * MIN}] * 3
    failed = [{"status": "failed", "created_at": T0 - 10 * MIN, "last_error": "token expired"}] * 2
    old = [{"status": "failed", "created_at": T0 - 3 * timedelta(hours=1)}]
    await outbound(core, channel, sent + failed + old)
    h = await one(core, channel, T0)
    assert (h.sends_hour, h.failed_sends_hour) == (5, 2) and h.error_rate == pytest.approx(0.4)
    assert "Failing sends: 2 of 5 in the last hour failed" in h.warnings


async def test_too_few_attempts_do_not_warn_about_sends(core, channel: int) -> None:
    await outbound(core, channel, [{"status": "sent", "created_at": T0 - 20 * MIN, "sent_at": T0 - 19 * MIN},
                                   *[{"status": "failed", "created_at": T0 - 10 * MIN}] * 3])
    h = await one(core, channel, T0)
    assert h.error_rate == pytest.approx(0.75) and not any("Failing sends" in w for w in h.warnings)


async def test_needs_reauth_and_paused_warn(core, channel: int) -> None:
    await set_status(core.engine, channel, "needs_reauth", "Graph error 190: the token has expired")
    h = await one(core, channel, T0)
    assert h.needs_reauth
    assert h.warnings == ["Needs re-authorisation: Graph error 190: the token has expired"]
    await set_status(core.engine, channel, "paused", "")
    h = await one(core, channel, T0)
    assert not h.needs_reauth and h.warnings == ["Paused: no events are fetched and no replies are sent"]


class _NoInfo:
    pass


class _Info:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def webhook_info(self) -> dict[str, Any]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_webhook_status_from_connectors_that_have_it() -> None:
    assert await health.webhook_status(_NoInfo()) is None
    status = await health.webhook_status(_Info({"url": "https://x.test/webhooks/telegram/1",
                                                "pending_update_count": 17,
                                                "last_error_message": "Wrong response from the webhook: 502"}))
    assert status == health.WebhookStatus("https://x.test/webhooks/telegram/1", 17,
                                          "Wrong response from the webhook: 502")
    failed = await health.webhook_status(_Info(AuthFailed("Telegram rejected the bot token")))
    assert failed is not None and "Telegram rejected the bot token" in failed.problem
