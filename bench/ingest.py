"""Webhook ingest: acknowledgements/s, ack latency, time to ingested+routed, lost and duplicated.

    .venv/bin/python -m bench.ingest [--n 5000] [--concurrency 64] [--postgres [--workers N]] [--quick]

Runs, against one fresh database: a bare aiohttp endpoint and a naive per-request-commit
handler (both subprocesses) as yardsticks, then the real `socialcrm serve` subprocess (with
`--workers N` processes on one port on PostgreSQL): closed loop at `--concurrency`, a fixed
offered rate, and a phase with ~10% redeliveries. During the closed-loop burst a probe sends one
delivery at a time to a second channel and measures the time from its acknowledgement until
the inbox query of that channel's agent shows it (target: p99 <= 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime  # resolves the naive model's annotation
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import common as c
from bench.common import Delivery, LoadResult

TARGETS = {"ack_vs_bare": 0.40, "ingested_vs_bare": 0.20, "ingested_vs_naive": 7.0,
           "fixed_rate_p99_ms": 10.0, "capacity_p99_ms": 50.0, "visible_p99_ms": 1000.0}
PROBE_TEAM, PROBE_ACCOUNT, PROBE_AGENT = "Bench probe", "bench-probe", "bench-probe-agent"
PROBE_GAP_S = 0.05
#: Probe customers in parallel, each its own conversation: all on the inbox's first page.
PROBE_THREADS = 8


# -- yardstick servers (run as `python -m bench.ingest --serve bare|naive`) ---------------------

def serve(kind: str, port: int, url: str | None) -> None:
    from aiohttp import web

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/healthz", _ok)
    if kind == "bare":
        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.json_response({"ok": True})
    else:
        handler = _naive_handler(app, url or "")
    app.router.add_post("/webhooks/{connector}/{channel_id}", handler)
    web.run_app(app, host=c.HOST, port=port, print=None)


async def _ok(request: Any) -> Any:
    from aiohttp import web
    return web.json_response({"ok": True})


def _naive_handler(app: Any, url: str) -> Any:
    """What a first version would do: a SQLModel session per request, one row, commit, answer."""
    from sqlmodel import Field, SQLModel
    from sqlmodel.ext.asyncio.session import AsyncSession

    from socialcrm.db import make_engine
    from socialcrm.models import utcnow

    class NaiveDelivery(SQLModel, table=True):
        __tablename__ = "bench_naive_delivery"
        id: int | None = Field(default=None, primary_key=True)
        body: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
        received_at: datetime

    engine = make_engine(url)

    async def create(app: Any) -> None:
        async with engine.begin() as conn:
            await conn.run_sync(lambda s: NaiveDelivery.__table__.create(s, checkfirst=True))

    async def dispose(app: Any) -> None:
        await engine.dispose()

    app.on_startup.append(create)
    app.on_cleanup.append(dispose)

    async def handler(request: Any) -> Any:
        from aiohttp import web
        body = await request.read()
        async with AsyncSession(engine) as session:
            session.add(NaiveDelivery(body=body, received_at=utcnow()))
            await session.commit()
        return web.json_response({"ok": True})

    return handler


def yardstick(kind: str, db: c.BenchDB, tmp: Any) -> Any:
    port = c.free_port()
    cmd = [sys.executable, "-m", "bench.ingest", "--serve", kind, "--port", str(port), "--url", db.url]
    env = c.server_env(db, port, "", tmp)
    return c.server(kind, cmd, env, port, tmp)


# -- polling the database -------------------------------------------------------------------------

async def counts(engine: Any, channel_id: int) -> tuple[int, int]:
    """(messages, assigned conversations) of the bench channel."""
    from socialcrm import models
    m, conv = models.Message.__table__, models.Conversation.__table__
    async with engine.connect() as conn:
        msgs = await conn.scalar(sa.select(sa.func.count()).select_from(m).where(m.c.channel_id == channel_id))
        assigned = await conn.scalar(sa.select(sa.func.count()).select_from(conv).where(
            conv.c.channel_id == channel_id, conv.c.assignee_id.is_not(None)))
    return int(msgs or 0), int(assigned or 0)


async def wait_ingested(engine: Any, channel_id: int, messages: int, conversations: int,
                        timeout: float) -> float | None:
    """perf_counter when every message is stored and every conversation assigned; None on timeout."""
    deadline = time.perf_counter() + timeout
    while True:
        got = await counts(engine, channel_id)
        if got[0] >= messages and got[1] >= conversations:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            return None
        await asyncio.sleep(0.05)


async def verify(engine: Any, channel_id: int, expected_ids: set[str]) -> dict[str, int]:
    """Every acknowledged id is a message (or still waiting in an unprocessed receipt), once."""
    from socialcrm import models
    m, r = models.Message.__table__, models.Receipt.__table__
    async with engine.connect() as conn:
        stored = [row[0] for row in await conn.execute(sa.select(m.c.external_id).where(m.c.channel_id == channel_id))]
        statuses = dict((await conn.execute(sa.select(r.c.status, sa.func.count()).group_by(r.c.status))).all())
        waiting = {item["id"] for (body,) in await conn.execute(sa.select(r.c.body).where(r.c.status != "processed"))
                   for item in json.loads(body)["events"]}
    unique = set(stored)
    return {"expected_unique": len(expected_ids), "stored_rows": len(stored), "stored_unique": len(unique),
            "lost": len(expected_ids - unique - waiting), "still_in_receipts": len(expected_ids & waiting - unique),
            "duplicated": len(stored) - len(unique), "unexpected": len(unique - expected_ids),
            **{f"receipts_{k}": v for k, v in statuses.items()}}


def with_redeliveries(fresh: list[Delivery], share: float, seed: int) -> list[Delivery]:
    """`fresh` plus repeats of some of them (same body, same signature), ~`share` of all sends;
    half the repeats follow right behind their original so both are in flight together."""
    rng = random.Random(seed)
    repeats = int(len(fresh) * share / (1 - share))
    out = list(fresh)
    for d in rng.sample(fresh, repeats):
        i = out.index(d)
        out.insert(i + 1 if rng.random() < 0.5 else rng.randrange(i + 1, len(out) + 1), replace(d))
    return out


# -- the run ----------------------------------------------------------------------------------------

def server_pids(srv: c.Server) -> list[int]:
    """The server and, with --workers, its worker processes (which do the work)."""
    pids = [srv.pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == srv.pid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def server_cpu(srv: c.Server) -> float:
    return sum(c.cpu_seconds(pid) for pid in server_pids(srv))


def server_memory(srv: c.Server) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) summed over the server's processes, in MB."""
    total: dict[str, float] = {}
    for pid in server_pids(srv):
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key = line.split(":")[0]
                total[key] = round(total.get(key, 0.0) + int(line.split()[1]) / 1024, 1)
    return total


@contextmanager
def serve_real(db: c.BenchDB, key: str, tmp: Any, args: argparse.Namespace) -> Iterator[c.Server]:
    """`socialcrm serve` (scheduler off), with `--workers N` processes when asked."""
    port = c.free_port()
    cmd = [str(c.BIN / "socialcrm"), "serve", "--host", c.HOST, "--port", str(port), "--workers", str(args.workers)]
    with c.server("socialcrm", cmd, c.server_env(db, port, key, tmp, args.log_level), port, tmp) as srv:
        if args.workers > 1:   # every worker up before the load starts, not just the first
            deadline = time.monotonic() + 60
            while len(server_pids(srv)) <= args.workers and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(2.0)
        yield srv


async def load(srv: c.Server, url: str, deliveries: list[Delivery], concurrency: int, deadline_s: float,
               rate: float | None = None) -> LoadResult:
    """Closed loop (or open loop at `rate`), with the CPU both sides used meanwhile."""
    cpu0, mine0 = server_cpu(srv), c.cpu_seconds()
    async with c.client_session(concurrency) as session:
        if rate is None:
            res = await c.closed_loop(session, url, deliveries, concurrency, deadline_s)
        else:
            res = await c.open_loop(session, url, deliveries, rate, drain_s=deadline_s)
    res.cpu = {"server_cpu_s": round(server_cpu(srv) - cpu0, 2),
               "client_cpu_s": round(c.cpu_seconds() - mine0, 2)}
    return res


# -- acknowledgement to visible in the inbox ----------------------------------------------------

@dataclass
class Probe:
    """Customers on a channel and team of their own, each writing one message at a time: each
    message becomes the preview of its customer's conversation, and the few conversations all
    fit on the first page of the probe agent's inbox. One watcher runs that inbox query every
    WATCH_S (what an agent's page would load) and notes when each acknowledged message shows."""

    url: str
    viewer: Any
    latencies: list[float] = field(default_factory=list)
    unseen: int = 0
    waiting: dict[str, tuple[float, asyncio.Future[None]]] = field(default_factory=dict)

    WATCH_S = 0.025
    TIMEOUT_S = 10.0

    def body(self, customer: int, n: int) -> tuple[str, bytes, dict[str, str]]:
        text = f"probe {customer}-{n:06d} where is my parcel"
        who = f"probe-cust-{customer}"
        item = {"type": "dm", "id": f"probe-m-{customer}-{n}", "timestamp": int(time.time() * 1000), "text": text,
                "thread_id": who, "author": {"id": who, "name": f"Probe {customer}", "handle": who}}
        body = json.dumps({"account_id": PROBE_ACCOUNT, "events": [item]}).encode()
        return text, body, {"X-Simulator-Signature": c.sign(body), "Content-Type": "application/json"}

    async def run(self, engine: Any, stop: asyncio.Event) -> None:
        watcher = asyncio.create_task(self._watch(engine))
        try:
            async with c.client_session(PROBE_THREADS) as session:
                await asyncio.gather(*(self._customer(session, i, stop) for i in range(PROBE_THREADS)))
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _customer(self, session: Any, customer: int, stop: asyncio.Event) -> None:
        """Until `stop`: send a message, wait until the watcher sees it (or TIMEOUT_S: counted
        unseen), pause, repeat."""
        for n in range(100_000):
            if stop.is_set():
                return
            text, body, headers = self.body(customer, n)
            async with session.post(self.url, data=body, headers=headers) as resp:
                await resp.read()
                acked = time.perf_counter()
            if resp.status == 200:
                seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self.waiting[text] = (acked, seen)
                try:
                    await asyncio.wait_for(seen, self.TIMEOUT_S)
                except TimeoutError:
                    self.unseen += 1
                self.waiting.pop(text, None)
            await asyncio.sleep(PROBE_GAP_S)

    async def _watch(self, engine: Any) -> None:
        from socialcrm import inbox

        while True:
            if self.waiting:
                previews = [r.preview for r in await inbox.queue(engine, self.viewer, "all")]
                now = time.perf_counter()
                for text, (acked, seen) in list(self.waiting.items()):
                    if not seen.done() and any(p.startswith(text) for p in previews):
                        self.latencies.append(now - acked)
                        seen.set_result(None)
            await asyncio.sleep(self.WATCH_S)

    def figures(self) -> dict[str, Any]:
        return {"probes": len(self.latencies), "unseen": self.unseen, **c.ms_summary(self.latencies)}


async def seed_probe(db: c.BenchDB, key: str) -> int:
    """The probe's channel, team and online agent; returns the agent's id."""
    from socialcrm.db import make_engine

    engine = make_engine(db.url)
    try:
        await c.add_channel(engine, key, PROBE_TEAM, account_id=PROBE_ACCOUNT)
        return await c.add_agent(engine, PROBE_AGENT, [PROBE_TEAM])
    finally:
        await engine.dispose()


async def probe_for(engine: Any, srv: c.Server, agent_id: int) -> Probe:
    from socialcrm import models, users

    ch = models.Channel.__table__
    async with engine.connect() as conn:
        channel_id = await conn.scalar(sa.select(ch.c.id).where(ch.c.account_id == PROBE_ACCOUNT))
    loaded = await users.load_viewer(engine, agent_id)
    assert loaded is not None
    return Probe(c.webhook_url(srv.base, channel_id), loaded[0])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fig: dict[str, Any] = {"bench": "ingest", "machine": c.machine(), "n": args.n, "concurrency": args.concurrency,
                           "database": "postgresql" if args.postgres else "sqlite", "workers": args.workers,
                           "targets": TARGETS}
    customers = max(50, args.n // 4)
    main = c.make_deliveries(args.n, "main", customers=customers, seed=1)
    warm = c.make_deliveries(max(1, min(200, args.n // 3)), "warm", customers=50, seed=2)
    rated = c.make_deliveries(int(args.rate * args.rate_seconds), "rate", customers=customers, seed=3)
    dup_fresh = c.make_deliveries(max(100, args.n // 5), "dup", customers=max(50, args.n // 20), seed=4)
    dup_sends = with_redeliveries(dup_fresh, args.dup_share, seed=5)
    key = c.new_key()
    with c.temp_dir(args.keep) as tmp:
        db = await c.create_db(args.postgres, tmp, "ingest")
        try:
            fig["migrate_s"] = round(c.migrate(db, key, tmp), 2)
            fx = await c.seed_basics(db, key)
            probe_agent = await seed_probe(db, key)
            for kind in ("bare", "naive"):
                with yardstick(kind, db, tmp) as srv:
                    url = c.webhook_url(srv.base, fx.channel_id)
                    await load(srv, url, warm, args.concurrency, 30)
                    fig[kind] = (await load(srv, url, main, args.concurrency, 30)).figures()
            fig |= await run_real(args, db, key, tmp, fx, probe_agent, warm, main, rated, dup_sends)
        finally:
            await c.drop_db(db, keep=args.keep)
    return fig


async def run_real(args: argparse.Namespace, db: c.BenchDB, key: str, tmp: Any, fx: c.Fixture, probe_agent: int,
                   warm: list[Delivery], main: list[Delivery], rated: list[Delivery],
                   dup_sends: list[Delivery]) -> dict[str, Any]:
    fig: dict[str, Any] = {"skipped": []}
    budget = c.Budget(args.budget)
    engine = c.ro_engine(db)
    ids: set[str] = set()
    threads: set[str] = set()
    results: list[LoadResult] = []

    def expect(res: LoadResult) -> tuple[int, int]:
        results.append(res)
        ids.update(d.external_id for d in res.acked)
        threads.update(d.thread_key for d in res.acked)
        return len(ids), len(threads)

    try:
        with serve_real(db, key, tmp, args) as srv:
            url = c.webhook_url(srv.base, fx.channel_id)
            res = await load(srv, url, warm, args.concurrency, 30)
            if await wait_ingested(engine, fx.channel_id, *expect(res), timeout=60) is None:
                raise RuntimeError(f"warm-up deliveries were not ingested:\n{srv.log_tail()}")

            # closed loop at capacity, then the time until all of it is ingested and assigned;
            # meanwhile the probe measures acknowledgement -> visible in the inbox
            probe, stop_probe = await probe_for(engine, srv, probe_agent), asyncio.Event()
            probing = asyncio.create_task(probe.run(engine, stop_probe))
            with c.py_spy(server_pids(srv)[-1], args.profile):
                res = await load(srv, url, main, args.concurrency, budget.left(args.timeout))
                stop_probe.set()
                done = await wait_ingested(engine, fx.channel_id, *expect(res), timeout=budget.left(args.timeout))
            await asyncio.wait_for(probing, 15)
            fig["socialcrm"] = res.figures()
            fig["visible"] = probe.figures()
            full = (done - res.started) if done else float("nan")
            fig["ingested"] = {"elapsed_s": round(full, 3), "per_s": round(res.ok / full, 1) if done else 0.0,
                               "backlog_after_last_ack_s": round(full - res.elapsed, 3) if done else None,
                               "finished": done is not None}

            # fixed offered rates: the target's, and half the measured capacity if that is lower
            rates = [("fixed_rate", args.rate, rated)]
            half = round(0.5 * res.rate)
            if half < 0.9 * args.rate:
                rates.append(("half_capacity", half, c.make_deliveries(
                    int(half * args.rate_seconds), "half", customers=max(50, args.n // 4), seed=6)))
            for name, rate, deliveries in rates:
                if budget.left() < args.rate_seconds + 10:
                    fig["skipped"].append(name)
                    continue
                res = await load(srv, url, deliveries, 256, budget.left(30), rate=rate)
                done = await wait_ingested(engine, fx.channel_id, *expect(res), timeout=budget.left(args.timeout))
                fig[name] = res.figures() | {
                    "offered_per_s": rate, "finished": done is not None,
                    "ingest_lag_after_last_send_s": round(done - res.started - res.elapsed, 3) if done else None}

            # ~10% redeliveries of identical bodies, some of them concurrent with their original
            if budget.left() > 10:
                res = await load(srv, url, dup_sends, args.concurrency, budget.left(30))
                repeats = len(dup_sends) - len({d.external_id for d in dup_sends})
                done = await wait_ingested(engine, fx.channel_id, *expect(res), timeout=budget.left(args.timeout))
                fig["redelivery"] = res.figures() | {"repeats": repeats, "finished": done is not None}
            else:
                fig["skipped"].append("redelivery")
            await asyncio.sleep(0.3)   # let a late duplicate (if any) land before counting
            fig["verify"] = v = await verify(engine, fx.channel_id, ids)
            v["acked_sends"] = sum(r.ok for r in results)
            v["non_200"] = sum(n for r in results for s, n in r.statuses.items() if s not in (200, -1))
            v["shed_by_client"] = sum(r.statuses.get(-1, 0) for r in results)
            v["conversations_expected"] = len(threads)
            v["assigned"] = (await counts(engine, fx.channel_id))[1]
            fig["server_memory_mb"] = server_memory(srv)
    finally:
        await engine.dispose()
    return fig


def report(fig: dict[str, Any]) -> None:
    bare, naive, real, ing = fig["bare"], fig["naive"], fig["socialcrm"], fig["ingested"]
    nan = float("nan")
    fig["ratios"] = r = {"ack_vs_bare": real["per_s"] / bare["per_s"],
                         "ingested_vs_bare": (ing["per_s"] or nan) / bare["per_s"],
                         "ingested_vs_naive": (ing["per_s"] or nan) / naive["per_s"]}
    fr, v, dup = fig.get("fixed_rate"), fig["verify"], fig.get("redelivery")
    workers = f", {fig['workers']} workers" if fig.get("workers", 1) > 1 else ""
    c.print_table(f"throughput, {real['sent']:,} of {fig['n']:,} deliveries of ~2 KB at concurrency "
                  f"{fig['concurrency']} ({fig['database']}{workers}, {fig['machine']['cores']} cores)", [
        ("bare aiohttp endpoint, acks/s", bare["per_s"], "", ""),
        ("naive session-per-request commit, acks/s", naive["per_s"], "", ""),
        ("socialcrm acknowledged, /s", real["per_s"], "", ""),
        ("socialcrm ingested + routed, /s", ing["per_s"] if ing["finished"] else "unfinished", "", ""),
        ("acknowledged / bare", r["ack_vs_bare"], ">= 0.40", c.verdict(r["ack_vs_bare"], 0.40, True)),
        ("ingested+routed / bare", r["ingested_vs_bare"], ">= 0.20", c.verdict(r["ingested_vs_bare"], 0.20, True)),
        ("ingested+routed / naive", r["ingested_vs_naive"], ">= 7", c.verdict(r["ingested_vs_naive"], 7.0, True)),
        ("CPU s server / client: bare", f"{bare['server_cpu_s']} / {bare['client_cpu_s']}", "", ""),
        ("CPU s server / client: naive", f"{naive['server_cpu_s']} / {naive['client_cpu_s']}", "", ""),
        ("CPU s server / client: socialcrm (acks)", f"{real['server_cpu_s']} / {real['client_cpu_s']}", "", ""),
    ])
    rows = [
        ("bare, closed loop p50 / p99", f"{bare['p50_ms']} / {bare['p99_ms']}", "", ""),
        ("naive, closed loop p50 / p99", f"{naive['p50_ms']} / {naive['p99_ms']}", "", ""),
        ("at capacity (closed loop) p50", real["p50_ms"], "", ""),
        ("at capacity (closed loop) p99", real["p99_ms"], "<= 50", c.verdict(real["p99_ms"], 50, False)),
        ("ingest backlog after the last ack, s", ing["backlog_after_last_ack_s"], "", ""),
    ]
    if vis := fig.get("visible"):
        rows += [(f"ack -> visible in the inbox during the burst, p50 ({vis['probes']} probes)", vis["p50_ms"], "", ""),
                 ("ack -> visible in the inbox during the burst, p99", vis["p99_ms"], "<= 1,000",
                  c.verdict(vis["p99_ms"], 1000, False)),
                 ("probes not visible within 10 s", vis["unseen"], "0", "PASS" if vis["unseen"] == 0 else "MISS")]
    for phase in (fr, fig.get("half_capacity")):
        if not phase:
            continue
        rate = f"{phase['offered_per_s']:,.0f}/s" + (" (half capacity)" if phase is not fr else "")
        target = ("<= 10", c.verdict(phase["p99_ms"], 10, False)) if phase is fr else ("", "")
        rows += [(f"offered {rate} p50", phase["p50_ms"], "", ""),
                 (f"offered {rate} p99", phase["p99_ms"], *target),
                 (f"offered {rate}: acks/s achieved", phase["per_s"], "", ""),
                 (f"offered {rate}: ingest lag after the last send, s", phase["ingest_lag_after_last_send_s"], "", "")]
    c.print_table("acknowledgement latency (ms)" + (f"; skipped (time budget): {fig['skipped']}" if fig["skipped"]
                                                    else ""), rows)
    c.print_table("exactly once (all phases, incl. ~10% redeliveries)", [
        ("unique deliveries acknowledged", v["expected_unique"], "", ""),
        ("redeliveries sent", dup["repeats"] if dup else "skipped", "", ""),
        ("lost", v["lost"], "0", "PASS" if v["lost"] == 0 else "MISS"),
        ("duplicated", v["duplicated"], "0", "PASS" if v["duplicated"] == 0 else "MISS"),
        ("still waiting in receipts (unfinished ingest)", v["still_in_receipts"], "0", ""),
        ("conversations assigned / expected", f"{v['assigned']} / {v['conversations_expected']}", "all",
         "PASS" if v["assigned"] >= v["conversations_expected"] else "MISS"),
        ("answers other than 200 (timeouts, errors)", v["non_200"], "0", ""),
        ("sends shed by the client (> 2,000 in flight)", v["shed_by_client"], "", ""),
        ("server RSS now / peak, MB", f"{fig['server_memory_mb'].get('VmRSS')} / {fig['server_memory_mb'].get('VmHWM')}",
         "", ""),
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000, help="deliveries in the closed-loop run")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--postgres", action="store_true", help=f"a fresh database on {c.PG_ADMIN_URL.rsplit('/', 1)[0]}")
    p.add_argument("--workers", type=int, default=1, help="server processes on one port (above 1 needs --postgres)")
    p.add_argument("--rate", type=float, default=1000.0, help="offered deliveries/s in the fixed-rate run")
    p.add_argument("--rate-seconds", type=float, default=5.0)
    p.add_argument("--dup-share", type=float, default=0.10, help="share of sends that are redeliveries")
    p.add_argument("--timeout", type=float, default=60.0, help="max seconds for one phase's sends or ingest wait")
    p.add_argument("--budget", type=float, default=150.0, help="max seconds for all phases of the real server")
    p.add_argument("--log-level", default="INFO", help="the server's SOCIALCRM_LOG_LEVEL (INFO logs each request)")
    p.add_argument("--quick", action="store_true", help="a ~10 s smoke run")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (server logs, SQLite file)")
    p.add_argument("--profile", metavar="FILE", help="py-spy the server during the closed loop (collapsed stacks)")
    p.add_argument("--serve", choices=("bare", "naive"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.workers < 1 or (args.workers > 1 and not args.postgres):
        p.error("--workers above 1 needs --postgres (SQLite is single-process)")
    if args.quick:
        args.n, args.rate_seconds, args.timeout, args.budget = min(args.n, 400), 0.5, 20.0, 30.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.url)
        return 0
    return c.run_main(run, report, args)


if __name__ == "__main__":
    sys.exit(main())
