"""How long the lead dashboard takes: its figures in memory, or the whole page through the app.

Default mode: builds ~10,000 synthetic conversations' event lists over 30 days (seeded), then
times every SLA timeline under business hours (Europe/Oslo, Norwegian holidays), the summary per
channel, per visibility and per agent, and first-contact resolution. No database, no server:
the computational core only, a floor for the page's render time.

`--page`: seeds a temporary database with `socialcrm seed` (~10,000 conversations, 30 days),
starts `socialcrm serve`, signs in as a lead and times GET /dashboard (7 and 30 days) and the
live panel over HTTP, uncached (each request after a change of the SLA setup, so every clock
is computed before the answer, with the server's CPU time per request) and cached (what every
other view gets: the figures are answered at once and refreshed behind); plus the in-process
split between reading and computing.

    .venv/bin/python -m bench.dashboard [--n 10000] [--seed 5] [--quick]
    .venv/bin/python -m bench.dashboard --page [--n 10000] [--requests 8] [--postgres | --both]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from socialcrm.calendars import (
    BusinessCalendar,
    add_business_time,
    norwegian_holidays,
    weekdays,
)
from socialcrm.metrics import Event, SlaPolicy, timeline
from socialcrm.sla_figures import (
    by_agent,
    by_attr,
    by_visibility,
    first_contact_resolution,
    summarize,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
CALENDAR = BusinessCalendar(hours=weekdays("08:00", "17:00"), holidays=norwegian_holidays(2026))
CHANNELS = ("facebook", "instagram", "x", "email")
AGENTS = tuple(range(1, 21))
#: Defaults from the issue: public 60 min, private 4 h, e-mail 24 h.
POLICIES = {(ch, public): SlaPolicy(60 if public else 240, 60 if public else 240, 8 * 60, CALENDAR)
            for ch in CHANNELS for public in (True, False)}
POLICIES[("email", False)] = SlaPolicy(24 * 60, 24 * 60, 3 * 24 * 60, CALENDAR)
TARGET_SECONDS = 2.0  # informational: the dashboard should feel instant for a month of a busy team


def synthetic_conversation(rng: random.Random) -> tuple[dict[str, Any], list[Event]]:
    """One plausible log: a customer, maybe a bot acknowledgement, replies, pauses, a resolve, a reopen."""
    channel = rng.choice(CHANNELS)
    public = channel != "email" and rng.random() < 0.4
    at = _daytime(NOW - timedelta(days=rng.randrange(30)), rng)
    events = [Event("created", at, None, {"public": public}), Event("customer_message", at)]
    if rng.random() < 0.3:
        events.append(Event("responded", at + timedelta(seconds=5), None, {"automated": True}))
    agent = rng.choice(AGENTS)
    for turn in range(rng.choice((1, 1, 1, 2, 3))):
        at = add_business_time(CALENDAR, at, rng.expovariate(1 / 40) * 60)  # agents answer in opening hours
        kind = "first_response" if turn == 0 else "responded"
        events.append(Event(kind, at, agent) if rng.random() < 0.9 else Event(kind, at, None, {"via": "native app"}))
        if rng.random() < 0.2:
            events.append(Event("pending", at, agent))
        at += timedelta(minutes=rng.expovariate(1 / 240))
        events.append(Event("customer_message", at))
    if rng.random() < 0.8:
        at += timedelta(minutes=rng.expovariate(1 / 60))
        events.append(Event("resolved", at, agent))
        if rng.random() < 0.1:
            events.append(Event("reopened", at + timedelta(days=rng.uniform(0, 10))))
    return {"channel": channel, "public": public}, [e for e in events if e.at <= NOW]


def _daytime(day: datetime, rng: random.Random) -> datetime:
    """Customers write around the clock, but mostly between 07:00 and 23:00 UTC."""
    return day.replace(hour=0, minute=0) + timedelta(minutes=rng.triangular(7 * 60, 23 * 60, 13 * 60))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 conversations")
    parser.add_argument("--page", action="store_true", help="time GET /dashboard on a seeded database")
    parser.add_argument("--requests", type=int, default=8, help="--page: timed requests per figure")
    parser.add_argument("--postgres", action="store_true", help="--page: on PostgreSQL instead of SQLite")
    parser.add_argument("--both", action="store_true", help="--page: SQLite, then PostgreSQL")
    parser.add_argument("--keep", action="store_true", help="--page: keep the temp dir")
    args = parser.parse_args()
    if args.page:
        raise SystemExit(page_main(args))
    n = 1_000 if args.quick else args.n
    rng = random.Random(args.seed)
    convs, build_s = timed(lambda: [synthetic_conversation(rng) for _ in range(n)])
    timelines, timeline_s = timed(lambda: [
        timeline(events, POLICIES[(attrs["channel"], attrs["public"])], NOW, conversation_id=i, attrs=attrs)
        for i, (attrs, events) in enumerate(convs)])
    tables, summary_s = timed(lambda: {name: summarize(timelines, key) for name, key in
                                       (("all", None), ("channel", by_attr("channel")),
                                        ("visibility", by_visibility), ("agent", by_agent))})
    fcr, fcr_s = timed(lambda: first_contact_resolution({i: ev for i, (_, ev) in enumerate(convs)}, NOW))
    _report(n, sum(len(ev) for _, ev in convs), build_s, timeline_s, summary_s, fcr_s, tables, fcr)


def _report(n: int, events: int, build_s: float, timeline_s: float, summary_s: float, fcr_s: float,
            tables: dict[str, Any], fcr: Any) -> None:
    total = timeline_s + summary_s + fcr_s
    print(f"{n} conversations, {events} events (built in {build_s:.2f} s)")
    print(f"{'figure':<34}{'measured':>12}{'target':>10}")
    for name, value in (("timelines", timeline_s), ("summaries (all/channel/vis/agent)", summary_s),
                        ("first-contact resolution", fcr_s)):
        print(f"{name:<34}{value:>10.3f} s{'':>10}")
    verdict = "PASS" if total <= TARGET_SECONDS else "MISS"
    print(f"{'dashboard figures total':<34}{total:>10.3f} s{TARGET_SECONDS:>8.1f} s  {verdict}")
    for channel, s in sorted(tables["channel"].items()):
        print(f"  {channel:<10} first response median {s.first_response_median or 0:7.1f} min, "
              f"p90 {s.first_response_p90 or 0:7.1f} min, attainment {s.attainment_pct or 0:5.1f} %")
    print(f"  first-contact resolution {fcr.rate_pct or 0:.1f} % ({len(fcr.undecided)} undecided)")
    print(json.dumps({"conversations": n, "events": events, "timelines_s": round(timeline_s, 4),
                      "summaries_s": round(summary_s, 4), "fcr_s": round(fcr_s, 4), "total_s": round(total, 4),
                      "attainment_pct": tables["all"][None].attainment_pct, "fcr_pct": fcr.rate_pct}))


# -- the page through the app ----------------------------------------------------------------

LEAD = "bench-lead"


async def _bump_setup(engine: Any, team_id: int, i: int) -> None:
    """A different SLA setup (an invisible at-risk change): the next request computes every clock again."""
    from socialcrm import models
    from socialcrm.db import insert

    cal = models.TeamCalendar.__table__
    values = {"team_id": team_id, "tz": "Europe/Oslo", "always_open": True, "hours": {}, "holidays": [],
              "at_risk_fraction": 0.8 + i * 1e-6, "updated_at": NOW}
    async with engine.begin() as conn:
        stmt = insert(conn, cal).values(**values)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["team_id"], set_=values))


async def _timed_gets(session: Any, base: str, path: str, n: int, before: Callable[[int], Any] | None = None
                      ) -> list[float]:
    out = []
    for i in range(n):
        if before is not None:
            await before(i)
        t = time.perf_counter()
        async with session.get(base + path, allow_redirects=False) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path} answered {resp.status}: {body[:200]!r}")
        out.append(time.perf_counter() - t)
    return out


async def _in_process(engine: Any, days: int) -> dict[str, float]:
    """Reading the period vs computing its clocks, in this process (best of three)."""
    from socialcrm import dashboard
    from socialcrm.models import utcnow
    from socialcrm.sla_policies import load_sla_setup

    now = utcnow()
    since, reads, computes, refreshes = now - timedelta(days=days), [], [], []
    for _ in range(3):
        async with engine.connect() as conn:
            setup = await load_sla_setup(conn)
            (started, logs), read_s = await _atimed(dashboard.load_period(conn, since, now))
        fig, compute_s = timed(lambda: dashboard.compute(started, logs, setup, now, since, now))
        # A background refresh: finished timelines of unchanged logs are lent by the last figures.
        _, refresh_s = timed(lambda: dashboard.compute(started, logs, setup, utcnow(), since, now, previous=fig))
        reads.append(read_s)
        computes.append(compute_s)
        refreshes.append(refresh_s)
    return {"read_ms": round(min(reads) * 1000, 1), "compute_ms": round(min(computes) * 1000, 1),
            "refresh_ms": round(min(refreshes) * 1000, 1)}


async def _atimed(coro: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - start


async def _one_database(args: argparse.Namespace, postgres: bool) -> dict[str, Any]:
    from bench import common as c
    from socialcrm.db import make_engine
    from socialcrm.registry import Registry
    from socialcrm.seed import Options, seed
    from socialcrm.users import create_user
    from socialcrm.vault import Vault

    key, out = c.new_key(), {}
    with c.temp_dir(args.keep) as tmp:
        db = await c.create_db(postgres, tmp, "dashboard")
        try:
            c.migrate(db, key, tmp)
            engine = make_engine(db.url)
            try:
                done, out["seed_s"] = await _atimed(seed(engine, Registry.from_entry_points(),
                                                         Vault([key.encode()]), Options(conversations=args.n, seed=args.seed)))
                out["events"] = done.events
                await create_user(engine, LEAD, c.PASSWORD, "lead", "Bench Lead")
                out["in_process_7d"], out["in_process_30d"] = await _in_process(engine, 7), await _in_process(engine, 30)
                with c.socialcrm_server(db, key, tmp, "WARNING") as srv:
                    async with c.client_session(1, cookies=True) as session:
                        await c.login(session, srv.base, LEAD)
                        bump, team = iter(range(1, 10_000)), await _a_team(engine)
                        for name, path in (("7d", "/dashboard?range=7d"), ("30d", "/dashboard?range=30d")):
                            await _timed_gets(session, srv.base, path, 1)    # warm-up
                            cpu = c.cpu_seconds(srv.pid)
                            out[f"page_{name}_uncached"] = c.ms_summary(await _timed_gets(
                                session, srv.base, path, args.requests,
                                lambda i: _bump_setup(engine, team, next(bump))))
                            # The server's own CPU per request: what the wall times mean on a busy machine.
                            out[f"page_{name}_uncached"]["server_cpu_ms"] = round(
                                (c.cpu_seconds(srv.pid) - cpu) / args.requests * 1000, 1)
                            out[f"page_{name}_cached"] = c.ms_summary(
                                await _timed_gets(session, srv.base, path, args.requests * 3))
                        out["live_panel"] = c.ms_summary(
                            await _timed_gets(session, srv.base, "/dashboard/live", args.requests * 3))
                    out["rss_mb"] = srv.rss_mb()
            finally:
                await engine.dispose()
        finally:
            await c.drop_db(db, keep=args.keep)
    return out


async def _a_team(engine: Any) -> int:
    """A team of the seeded channels: changing its calendar row changes the setup."""
    import sqlalchemy as sa

    from socialcrm import models

    channel = models.Channel.__table__
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.min(channel.c.team_id))))


async def _page_run(args: argparse.Namespace) -> dict[str, Any]:
    from bench import common as c

    kinds = (False, True) if args.both else (args.postgres,)
    fig: dict[str, Any] = {"bench": "dashboard page", "machine": c.machine(), "conversations": args.n,
                           "requests": args.requests}
    for postgres in kinds:
        name = "postgresql" if postgres else "sqlite"
        print(f"seeding {args.n:,} conversations on {name} and timing the page ...", flush=True)
        fig[name] = await _one_database(args, postgres)
    return fig


def _page_report(fig: dict[str, Any]) -> None:
    from bench import common as c

    for name in ("sqlite", "postgresql"):
        if name not in fig:
            continue
        f = fig[name]
        rows = [("seeding, s", round(f["seed_s"], 1), "", ""), ("events in the log", f["events"], "", "")]
        for period in ("7d", "30d"):
            p = f[f"in_process_{period}"]
            rows += [(f"in process {period}: read / compute / refresh, ms",
                      f"{p['read_ms']} / {p['compute_ms']} / {p['refresh_ms']}", "", "")]
            for mode in ("uncached", "cached"):
                s = f[f"page_{period}_{mode}"]
                rows.append((f"GET /dashboard {period} {mode} p50 / p95, ms", f"{s['p50_ms']} / {s['p95_ms']}",
                             "<= 1000" if mode == "uncached" else "",
                             c.verdict(s["p95_ms"], 1000, False) if mode == "uncached" else ""))
                if mode == "uncached":
                    rows.append((f"  server CPU per uncached {period} request, ms", s["server_cpu_ms"], "", ""))
        live = f["live_panel"]
        rows.append(("GET /dashboard/live p50 / p95, ms", f"{live['p50_ms']} / {live['p95_ms']}", "", ""))
        rows.append(("server RSS after, MB", f["rss_mb"].get("VmRSS", float("nan")), "", ""))
        c.print_table(f"dashboard page, {fig['conversations']:,} conversations over 30 days ({name}, "
                      f"{fig['machine']['cores']} cores)", rows)


def page_main(args: argparse.Namespace) -> int:
    from bench import common as c

    if args.quick:
        args.n, args.requests = min(args.n, 2_000), min(args.requests, 4)
    return c.run_main(_page_run, _page_report, args)


if __name__ == "__main__":
    main()
