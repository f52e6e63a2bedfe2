"""Per-channel pacing: below the platform's rate, never before a 429 allows, channels independent."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import httpx
import pytest
import respx
import sqlalchemy as sa

from connectors.simulator import SimulatorConnector
from connectors.whatsapp import api as whatsapp_api
from socialcrm import ingest, models, replies
from socialcrm.connector import Capabilities
from socialcrm.errors import RateLimited
from socialcrm.models import utcnow
from socialcrm.outbox import Dispatcher
from socialcrm.pacing import SHARE_OF_ALLOWED, Pacer, allowed_rate
from tests.support import PLATFORM, add_agent, add_team_and_channel, ev, running_core

msg_t, out_t = models.Message.__table__, models.OutboxEntry.__table__


class Clock:
    """A fixed clock that only sleeping moves: every wait is recorded, none is real."""

    def __init__(self) -> None:
        self.now = utcnow()
        self.slept: list[float] = []

    def __call__(self):
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class PacedSimulator(SimulatorConnector):
    """The simulator with a documented limit of 10 sends per second, as a platform would declare."""

    key = "paced"
    capabilities = Capabilities(webhook=True, poll=True, public_replies=True, private_replies=True,
                                max_length_public=500, max_length_private=2000, send_rate_per_second=10)


def ok(n: int) -> httpx.Response:
    return httpx.Response(200, json={"id": f"sim-out-{n}", "created_at": 1_764_061_300_000})


# -- the pacer alone ----------------------------------------------------------------------------

async def test_sends_are_spaced_below_the_allowed_rate() -> None:
    clock = Clock()
    pacer = Pacer(80, clock, clock.sleep)
    starts = []
    for _ in range(81):
        await pacer.wait_turn()
        starts.append(clock.now)
    span = (starts[-1] - starts[0]).total_seconds()
    assert span == pytest.approx(80 / (80 * SHARE_OF_ALLOWED), rel=1e-4)   # 80 gaps at 77.6/s: just over 1 s
    assert all(b - a == pacer.interval for a, b in zip(starts, starts[1:]))


async def test_the_budget_is_what_fits_in_the_horizon_and_nothing_while_held() -> None:
    clock = Clock()
    pacer = Pacer(10, clock, clock.sleep)
    assert pacer.budget(timedelta(seconds=1), cap=50) == 10             # 0, 0.103, ... 0.928 s
    assert Pacer(None, clock, clock.sleep).budget(timedelta(seconds=1), cap=50) == 50
    pacer.hold_until(clock.now + timedelta(seconds=30))
    assert pacer.budget(timedelta(seconds=1), cap=50) == 0
    clock.advance(29.5)
    assert pacer.budget(timedelta(seconds=1), cap=50) == 5              # from 30.0 s to 30.5 s
    await pacer.wait_turn()
    assert clock.slept == [pytest.approx(0.5)]                          # not one moment before the hold


def test_a_channel_setting_overrides_the_declared_rate() -> None:
    connector = SimpleNamespace(capabilities=Capabilities(send_rate_per_second=80),
                                settings=SimpleNamespace(send_rate_per_second=None))
    assert allowed_rate(connector) == 80
    connector.settings.send_rate_per_second = 20                        # a number shared with the Business app
    assert allowed_rate(connector) == 20
    assert allowed_rate(SimpleNamespace(capabilities=Capabilities(), settings=SimpleNamespace())) is None


def test_whatsapp_throughput_limit_waits_one_window_or_what_retry_after_says() -> None:
    body = {"error": {"message": "(#130429) Rate limit hit", "code": 130429}}
    with pytest.raises(RateLimited) as bare:
        whatsapp_api.raise_for_error(httpx.Response(429, json=body))
    with pytest.raises(RateLimited) as told:
        whatsapp_api.raise_for_error(httpx.Response(429, json=body, headers={"Retry-After": "7"}))
    assert (bare.value.retry_after, told.value.retry_after) == (1.0, 7.0)


# -- the dispatcher -----------------------------------------------------------------------------

async def conversations(core, channel_id: int, n: int, prefix: str = "c") -> list[int]:
    info = (await core.channels.get(channel_id)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("message", f"{prefix}-in-{i}", f"{prefix}-cust-{i}", author=f"{prefix}-cust-{i}",
                                           at=utcnow()) for i in range(n)])
        conv_t = models.Conversation.__table__
        return list((await conn.execute(sa.select(conv_t.c.id).where(conv_t.c.channel_id == channel_id)
                                        .order_by(conv_t.c.id))).scalars().all())


async def statuses(core, ids) -> list[str]:
    async with core.engine.connect() as conn:
        rows = dict((await conn.execute(sa.select(msg_t.c.id, msg_t.c.status).where(msg_t.c.id.in_(ids)))).all())
    return [rows[i] for i in ids]


async def test_a_paced_channel_starts_sends_one_interval_apart(database_url) -> None:
    async with running_core(database_url, connectors=(PacedSimulator,)) as core, respx.mock(base_url=PLATFORM) as platform:
        channel_id = await add_team_and_channel(core, connector="paced")
        agent = await add_agent(core, "kari", online=False)
        ids = [await replies.compose(core, conv, agent, f"svar {i}")
               for i, conv in enumerate(await conversations(core, channel_id, 12))]
        clock = core.dispatcher.clock = Clock()
        core.dispatcher.sleep = clock.sleep
        times = []
        platform.post("/api/replies").mock(side_effect=lambda request: times.append(clock.now) or ok(len(times)))
        await core.dispatcher.run_once()
        assert await statuses(core, ids) == ["sent"] * 12
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
        assert min(gaps) >= 1 / 10                                      # never faster than allowed
        assert sum(gaps) == pytest.approx(11 / (10 * SHARE_OF_ALLOWED), rel=1e-4)   # and no slower


async def test_one_channels_rate_limit_does_not_hold_up_another(database_url) -> None:
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        limited = await add_team_and_channel(core, account_id="busy")
        free = await add_team_and_channel(core, team="Care", account_id="calm")
        agent = await add_agent(core, "kari", online=False)
        busy_ids = [await replies.compose(core, c, agent, "a") for c in await conversations(core, limited, 3, "b")]
        calm_ids = [await replies.compose(core, c, agent, "b") for c in await conversations(core, free, 3, "q")]
        thread_of = {}
        async with core.engine.connect() as conn:
            for row in (await conn.execute(sa.select(out_t.c.channel_id, out_t.c.payload))).all():
                thread_of[row.payload["thread_external_id"]] = row.channel_id

        def channel_of(request: httpx.Request) -> int:
            return thread_of[json.loads(request.content)["thread_id"]]

        def answer(request: httpx.Request) -> httpx.Response:
            if channel_of(request) == limited:
                return httpx.Response(429, headers={"Retry-After": "60"})
            return ok(len(route.calls))

        route = platform.post("/api/replies").mock(side_effect=answer)
        clock = core.dispatcher.clock = Clock()
        core.dispatcher.sleep = clock.sleep
        await core.dispatcher.run_once()
        assert await statuses(core, calm_ids) == ["sent"] * 3
        assert await statuses(core, busy_ids) == ["queued"] * 3
        assert [channel_of(c.request) for c in route.calls].count(limited) == 1   # one refusal stops that channel


async def test_a_429_hold_binds_every_dispatcher_and_new_replies_too(database_url) -> None:
    """Another process (a second Dispatcher with its own pacer) and a reply queued after the 429
    both wait for the time the platform named."""
    async with running_core(database_url) as core, respx.mock(base_url=PLATFORM) as platform:
        route = platform.post("/api/replies").mock(side_effect=[httpx.Response(429, headers={"Retry-After": "120"}),
                                                                ok(1), ok(2)])
        channel_id = await add_team_and_channel(core)
        agent = await add_agent(core, "kari", online=False)
        first, second = await conversations(core, channel_id, 2)
        early = await replies.compose(core, first, agent, "one")
        clock = core.dispatcher.clock = Clock()
        await core.dispatcher.run_once()
        assert route.call_count == 1
        late = await replies.compose(core, second, agent, "two")           # queued after the 429
        async with core.engine.begin() as conn:                           # queued "now" on the test clock
            await conn.execute(out_t.update().values(next_attempt_at=clock.now).where(out_t.c.message_id == late))
        other = Dispatcher(core.engine, core.channels, core.hub, clock=clock, sleep=clock.sleep)
        clock.advance(60)
        await other.run_once()
        assert route.call_count == 1                                      # held, though its own pacer knows nothing
        clock.advance(61)
        await other.run_once()
        assert route.call_count == 3
        assert await statuses(core, [early, late]) == ["sent", "sent"]
