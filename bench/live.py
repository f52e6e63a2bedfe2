"""Live updates: from a webhook's 200 to the SSE event in a signed-in browser's stream.

    .venv/bin/python -m bench.live [--seconds 20] [--probe-rate 5] [--background-rate 100] [--postgres] [--quick]

Two teams: probes (one new customer each, at a steady rate) go to the channel of team A,
whose agent holds the SSE stream; background deliveries go to team B's channel at a fixed
rate. The stream forwards only team A's events, so the first `inbox` event after a probe's
200 is the one its batch caused (as long as probes are further apart than the latency);
`conversation-<id>` events are matched exactly through the probe's conversation id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from bisect import bisect_left
from typing import Any

import sqlalchemy as sa

from bench import common as c

TARGETS = {"inbox_p95_ms": 200.0}
BG_TEAM, BG_ACCOUNT, BG_AGENT = "Bench background team", "bench-brand-bg", "bench-background-agent"


class Stream:
    """Reads /events and notes when each event arrived (perf_counter)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.connected = asyncio.Event()

    async def read(self, session: Any, base: str) -> None:
        import aiohttp
        forever = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with session.get(f"{base}/events", timeout=forever) as resp:
            if resp.status != 200:
                raise RuntimeError(f"/events answered {resp.status}")
            self.connected.set()
            name, data = "message", ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and data:
                    self.events.append((time.perf_counter(), name, json.loads(data)))
                    name, data = "message", ""

    def arrivals(self, name: str) -> list[float]:
        return [t for t, n, _ in self.events if n == name]


async def probes(session: Any, url: str, deliveries: list[c.Delivery], rate: float) -> list[tuple[float, float, str]]:
    """(sent, answered, thread key) per probe, one every 1/rate s (a probe that fails is left out)."""
    out = []
    t0 = time.perf_counter()
    for i, d in enumerate(deliveries):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = time.perf_counter()
        async with session.post(url, data=d.body, headers=d.headers) as resp:
            await resp.read()
            if resp.status == 200:
                out.append((sent, time.perf_counter(), d.thread_key))
    return out


async def conversation_ids(db: c.BenchDB, channel_id: int, keys: list[str]) -> dict[str, int]:
    from socialcrm import models
    conv = models.Conversation.__table__
    engine = c.ro_engine(db)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(conv.c.thread_key, conv.c.id).where(
                conv.c.channel_id == channel_id, conv.c.thread_key.in_(keys)))
            return {k: i for k, i in rows}
    finally:
        await engine.dispose()


def first_after(times: list[float], t: float) -> float | None:
    i = bisect_left(times, t)
    return times[i] if i < len(times) else None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fig: dict[str, Any] = {"bench": "live", "machine": c.machine(), "seconds": args.seconds,
                           "probe_rate": args.probe_rate, "background_rate": args.background_rate,
                           "database": "postgresql" if args.postgres else "sqlite", "targets": TARGETS}
    key = c.new_key()
    n_probes = int(args.seconds * args.probe_rate)
    probe_ds = c.make_deliveries(n_probes, "probe", customers=10**9, dm_share=1.0, seed=7)   # a new customer each
    bg_ds = c.make_deliveries(int(args.seconds * args.background_rate), "bg", customers=max(50, int(args.seconds * 20)),
                              seed=8, account_id=BG_ACCOUNT)
    with c.temp_dir(args.keep) as tmp:
        db = await c.create_db(args.postgres, tmp, "live")
        try:
            c.migrate(db, key, tmp)
            fx = await c.seed_basics(db, key)
            from socialcrm.db import make_engine
            engine = make_engine(db.url)
            try:
                _, bg_channel = await c.add_channel(engine, key, BG_TEAM, BG_ACCOUNT)
                await c.add_agent(engine, BG_AGENT, [BG_TEAM])
            finally:
                await engine.dispose()
            with c.socialcrm_server(db, key, tmp, args.log_level) as srv:
                stream = Stream()
                async with c.client_session(4, cookies=True) as browser, c.client_session(256) as platform:
                    await c.login(browser, srv.base)
                    reader = asyncio.create_task(stream.read(browser, srv.base))
                    await asyncio.wait_for(stream.connected.wait(), 10)
                    bg = asyncio.create_task(c.open_loop(platform, c.webhook_url(srv.base, bg_channel), bg_ds,
                                                         args.background_rate))
                    await asyncio.sleep(0.5)   # the background is flowing before the first probe
                    sent = await probes(platform, c.webhook_url(srv.base, fx.channel_id), probe_ds, args.probe_rate)
                    bg_res = await bg
                    await asyncio.sleep(args.settle)   # the last events arrive
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
                fig["server_memory_mb"] = srv.rss_mb()
            ids = await conversation_ids(db, fx.channel_id, [k for _, _, k in sent])
        finally:
            await c.drop_db(db, keep=args.keep)
    fig["background"] = bg_res.figures()
    fig |= measure(stream, sent, ids)
    return fig


def measure(stream: Stream, sent: list[tuple[float, float, str]], ids: dict[str, int]) -> dict[str, Any]:
    inbox = stream.arrivals("inbox")
    by_conv: dict[str, float] = {}
    for t, name, _ in stream.events:
        by_conv.setdefault(name, t)
    after_ack, after_send, conv_lat = [], [], []
    for t_send, t_ack, key in sent:
        t = first_after(inbox, t_ack)
        if t is not None:
            after_ack.append(t - t_ack)
            after_send.append(t - t_send)
        cid = ids.get(key)
        t_conv = by_conv.get(f"conversation-{cid}") if cid is not None else None
        if t_conv is not None:
            conv_lat.append(t_conv - t_ack)
    return {"probes": len(sent), "inbox_events": len(inbox), "events_total": len(stream.events),
            "inbox_after_ack": c.ms_summary(after_ack), "inbox_after_send": c.ms_summary(after_send),
            "conversation_after_ack": c.ms_summary(conv_lat),
            "probes_without_inbox_event": len(sent) - len(after_ack),
            "probes_without_conversation_event": len(sent) - len(conv_lat),
            "probe_ack": c.ms_summary([a - s for s, a, _ in sent])}


def report(fig: dict[str, Any]) -> None:
    ia, cv, bg = fig["inbox_after_ack"], fig["conversation_after_ack"], fig["background"]
    c.print_table(f"webhook 200 -> SSE event, {fig['probes']} probes at {fig['probe_rate']}/s with "
                  f"{fig['background_rate']:,.0f}/s background ({fig['database']}, {fig['machine']['cores']} cores)", [
        ("`inbox` event after the 200, p50 ms", ia["p50_ms"], "", ""),
        ("`inbox` event after the 200, p95 ms", ia["p95_ms"], "<= 200", c.verdict(ia["p95_ms"], 200, False)),
        ("`inbox` event after the send, p95 ms", fig["inbox_after_send"]["p95_ms"], "", ""),
        ("`conversation-<id>` after the 200, p50 / p95 ms", f"{cv['p50_ms']} / {cv['p95_ms']}", "", ""),
        ("probes with no inbox / conversation event",
         f"{fig['probes_without_inbox_event']} / {fig['probes_without_conversation_event']}", "0", ""),
        ("probe acknowledgement p50 / p95 ms", f"{fig['probe_ack']['p50_ms']} / {fig['probe_ack']['p95_ms']}", "", ""),
        ("background acks/s achieved (offered)", f"{bg['per_s']:,.0f} ({fig['background_rate']:,.0f})", "", ""),
        ("background ack p99 ms", bg["p99_ms"], "", ""),
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--probe-rate", type=float, default=4.0, help="probe deliveries/s (keep 1/rate above the latency)")
    p.add_argument("--background-rate", type=float, default=100.0, help="other deliveries/s meanwhile")
    p.add_argument("--settle", type=float, default=2.0, help="seconds to wait for the last events")
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--quick", action="store_true", help="5 s")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.settle = min(args.seconds, 5.0), 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return c.run_main(run, report, args)


if __name__ == "__main__":
    sys.exit(main())
