"""Health signals from outside the database: what the platform says about the channel's access
(`platform_health()`), and webhook deliveries rejected in this process in the last hour."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from socialcrm import health
from socialcrm.errors import AuthFailed, TransientError
from tests.support import T0, add_team_and_channel, running_core

DAY = timedelta(days=1)


class _Platform:
    def __init__(self, answer: Any, delay: float = 0.0) -> None:
        self.answer, self.delay = answer, delay

    async def platform_health(self) -> dict[str, Any]:
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_token_expiring_within_seven_days_warns_with_the_days_left() -> None:
    soon = health.access_from({"token_valid": True, "token_expires_at": T0 + 3 * DAY}, T0)
    assert len(soon.warnings) == 1 and soon.warnings[0].startswith("The token expires in 3 days")
    assert health.access_from({"token_valid": True, "token_expires_at": T0 + 8 * DAY}, T0).warnings == []
    assert "expired" in health.access_from({"token_valid": True, "token_expires_at": T0 - DAY}, T0).warnings[0]
    never = health.access_from({"token_valid": True, "token_expires_at": None}, T0)
    assert never.token_never_expires and never.warnings == []


def test_an_invalid_token_and_a_lost_subscription_warn() -> None:
    bad = health.access_from({"token_valid": False, "token_expires_at": None}, T0)
    assert bad.warnings == ["The token is no longer valid: the platform rejects it; re-authorise the channel"]
    lost = health.access_from({"token_valid": True, "subscribed": False, "subscribed_fields": []}, T0)
    assert any("not subscribed to this page's webhooks (Meta stops sending)" in w for w in lost.warnings)
    fine = health.access_from({"token_valid": True, "subscribed": True, "subscribed_fields": ["feed"]}, T0)
    assert fine.warnings == [] and fine.subscribed_fields == ["feed"]


async def test_platform_errors_and_timeouts_become_warnings_never_exceptions(monkeypatch) -> None:
    rejected = await health.platform_access(_Platform(AuthFailed("Meta rejected the access token (190)")), T0)
    assert rejected is not None and rejected.token_valid is False
    assert "no longer valid" in rejected.warnings[0] and "(190)" in rejected.warnings[0]
    down = await health.platform_access(_Platform(TransientError("Meta failed (2)")), T0)
    assert down is not None and down.token_valid is None and "Could not ask the platform" in down.warnings[0]
    monkeypatch.setattr(health, "PLATFORM_HEALTH_TIMEOUT", 0.05)
    slow = await health.platform_access(_Platform({"token_valid": True}, delay=1.0), T0)
    assert slow is not None and "did not answer" in slow.warnings[0]
    assert await health.platform_access(_Platform({}), T0) is None


async def test_webhook_status_carries_the_access_even_without_webhook_info() -> None:
    status = await health.webhook_status(_Platform({"token_valid": True, "subscribed": False}), T0)
    assert status is not None and not status.has_webhook_info
    assert status.access is not None and status.access.subscribed is False
    assert await health.webhook_status(_Platform({}), T0) is None


def test_rejections_are_counted_per_key_and_forgotten_after_an_hour() -> None:
    now = [1000.0]
    counter = health.Rejections(clock=lambda: now[0])
    counter.add(("connector", "facebook"))
    counter.add(("channel", 7))
    counter.add(("channel", 7))
    assert counter.count(("channel", 7)) == 2 and counter.count(("connector", "facebook")) == 1
    assert counter.count(("channel", 8)) == 0
    now[0] += 3599
    counter.add(("channel", 7))
    assert counter.count(("channel", 7)) == 3
    now[0] += 2
    assert counter.count(("channel", 7)) == 1 and counter.count(("connector", "facebook")) == 0


@pytest.fixture
async def core(database_url: str, tmp_path):
    async with running_core(database_url, data_dir=tmp_path) as core:
        yield core


async def test_more_than_ten_rejections_in_an_hour_warn_on_the_channel(core) -> None:
    channel = await add_team_and_channel(core)
    counter = health.rejections_for(core.engine)
    assert health.rejections_for(core.engine) is counter
    for _ in range(10):
        counter.add(("channel", channel))
    h = next(h for h in await health.channel_health(core.engine) if h.channel_id == channel)
    assert h.rejected_channel_hour == 10 and h.warnings == []
    counter.add(("channel", channel), ("connector", "simulator"))
    h = next(h for h in await health.channel_health(core.engine) if h.channel_id == channel)
    assert h.rejected_channel_hour == 11 and h.rejected_connector_hour == 1
    assert len(h.warnings) == 1 and h.warnings[0].startswith("11 webhook deliveries to this channel's URL")
