"""The inbox page on a large database: GET / over HTTP vs a bare indexed query + Jinja render.

    .venv/bin/python -m bench.inbox [--rows 1000000] [--requests 50] [--postgres] [--quick]

Seeds `--rows` conversations (each with its contact, identity and first message) with
INSERT ... SELECT from a generated sequence, across 2 teams and 2 channels; signs in as an
agent of one team and times the inbox page, then the same top-50 query and a 50-row render
in-process; reports the server's memory.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from typing import Any

import jinja2
import sqlalchemy as sa

from bench import common as c

TARGETS = {"p95_vs_bare": 5.0, "rss_mb": 250.0}
SECOND_TEAM, SECOND_ACCOUNT = "Bench other team", "bench-brand-2"
DAY = 86400

# Deterministic pseudo-random numbers per row, the same in both dialects (64-bit integers);
# a different multiplier for each k so that the draws are not correlated.
MULTIPLIERS = (2654435761, 2246822519, 3266489917, 668265263, 374761393, 1181783497)


def h(k: int) -> str:
    return f"((i * {MULTIPLIERS[k]} + 12345) % 1000003)"


PUBLIC = f"({h(1)} % 10 < 4)"
STATUS = f"(CASE WHEN {h(2)} % 100 < 30 THEN 'open' WHEN {h(2)} % 100 < 35 THEN 'pending' ELSE 'resolved' END)"
OPEN = f"({h(2)} % 100 < 35)"
WAIT = f"({h(3)} % (3 * {DAY}))"                 # seconds waited, up to 3 days
SLA = f"(CASE WHEN {PUBLIC} THEN 3600 ELSE 14400 END)"
BAND = f"(CASE WHEN {PUBLIC} THEN 200000000000 ELSE 100000000000 END)"


class Dialect:
    """The few spellings that differ between SQLite and PostgreSQL."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def ts(self, epoch: str) -> str:
        if self.kind == "sqlite":   # the text format SQLAlchemy writes and reads back
            return f"(datetime({epoch}, 'unixepoch') || '.000000')"
        return f"(to_timestamp({epoch}) AT TIME ZONE 'UTC')"

    def key(self, prefix: str) -> str:
        if self.kind == "sqlite":
            return f"printf('{prefix}%08d', i)"
        return f"('{prefix}' || lpad(i::text, 8, '0'))"

    def json(self, literal: str) -> str:
        return f"'{literal}'" if self.kind == "sqlite" else f"'{literal}'::json"

    def insert(self, table: str, columns: str, select: str, n: int) -> str:
        if self.kind == "sqlite":
            return (f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
                    f"INSERT INTO {table} ({columns}) SELECT {select} FROM s")
        return f"INSERT INTO {table} ({columns}) SELECT {select} FROM generate_series(1, {n}::bigint) AS s(i)"


def seed_statements(d: Dialect, n: int, now: int, ch: tuple[int, int], teams: tuple[int, int],
                    agents: tuple[int, int]) -> list[tuple[str, str]]:
    channel = f"(CASE WHEN i % 2 = 1 THEN {ch[0]} ELSE {ch[1]} END)"
    team = f"(CASE WHEN i % 2 = 1 THEN {teams[0]} ELSE {teams[1]} END)"
    since = f"({now} - {WAIT})"
    created = d.ts(since)
    # Resolved ones keep who handled them; of the open ones a few hundred per agent are assigned.
    assignee = (f"(CASE WHEN NOT {OPEN} THEN (CASE {h(4)} % 3 WHEN 0 THEN {agents[0]} "
                f"WHEN 1 THEN {agents[1]} END) WHEN {h(4)} % 1000 < 2 THEN {agents[0]} "
                f"WHEN {h(4)} % 1000 < 4 THEN {agents[1]} END)")
    return [
        ("contact", d.insert("contact", "id, name, created_at", f"i, 'Customer ' || i, {created}", n)),
        ("identity", d.insert(
            "identity", "id, channel_id, contact_id, original_contact_id, external_id, name, handle, avatar_url, "
                        "followers, is_self, unreachable",
            f"i, {channel}, i, i, {d.key('seed-c')}, 'Customer ' || i, 'cust' || i, '', (i * 7919) % 20000, "
            f"{'0' if d.kind == 'sqlite' else 'false'}, {'0' if d.kind == 'sqlite' else 'false'}", n)),
        ("conversation", d.insert(
            "conversation", "id, channel_id, team_id, contact_id, identity_id, thread_key, thread_external_id, "
                            "reply_to_external_id, public, status, priority, waiting_since, sla_due_at, "
                            "first_response_at, last_customer_message_at, last_message_at, last_message_preview, "
                            "assignee_id, assignment_reason, created_at",
            f"i, {channel}, {team}, i, i, {d.key('seed-t')}, "
            f"{d.key('seed-t')}, {d.key('seed-m')}, {PUBLIC}, {STATUS}, "
            f"CASE WHEN {OPEN} THEN {BAND} - ({since} + {SLA}) ELSE {BAND} - 10000000000 END, "
            f"CASE WHEN {OPEN} THEN {created} END, CASE WHEN {OPEN} THEN {d.ts(f'{since} + {SLA}')} END, "
            f"CASE WHEN {OPEN} THEN NULL ELSE {d.ts(f'{since} + 600')} END, {created}, {created}, "
            f"'Hello, my order ' || i || ' has not arrived yet and the tracking page says nothing', "
            f"{assignee}, '', {created}", n)),
        ("message", d.insert(
            "message", "id, conversation_id, channel_id, external_id, direction, kind, public, author_identity_id, "
                       "text, attachments, status, error, moderation, deleted, reactions, created_at",
            f"i, i, {channel}, {d.key('seed-m')}, 'in', CASE WHEN {PUBLIC} THEN 'comment' ELSE 'message' END, "
            f"{PUBLIC}, i, 'Hello, my order ' || i || ' has not arrived yet and the tracking page says nothing. "
            f"Can you help me please?', {d.json('[]')}, 'received', '', '', {'0' if d.kind == 'sqlite' else 'false'}, "
            f"{d.json('{}')}, {created}", n)),
    ]


async def seed(db: c.BenchDB, rows: int, ch: tuple[int, int], teams: tuple[int, int],
               agents: tuple[int, int]) -> dict[str, float]:
    """Bulk rows straight in SQL; returns seconds per table."""
    now = int(time.time())
    timings: dict[str, float] = {}
    stmts = seed_statements(Dialect(db.kind), rows, now, ch, teams, agents)
    if db.kind == "sqlite":
        path = db.url.split("///", 1)[1]
        con = sqlite3.connect(path, isolation_level=None)
        try:
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144", "temp_store=MEMORY"):
                con.execute(f"PRAGMA {pragma}")
            for table, sql in stmts:
                t = time.perf_counter()
                con.execute("BEGIN")
                con.execute(sql)
                con.execute("COMMIT")
                timings[table] = round(time.perf_counter() - t, 2)
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
        return timings
    import asyncpg

    con = await asyncpg.connect(db.url)
    try:
        await con.execute("SET session_replication_role = replica")   # rows are consistent by construction
        for table, sql in stmts:
            t = time.perf_counter()
            await con.execute(sql)
            timings[table] = round(time.perf_counter() - t, 2)
        for table in ("contact", "identity", "conversation", "message"):
            await con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {rows + 1})")
        t = time.perf_counter()
        await con.execute("ANALYZE")   # what autovacuum would soon do on its own
        timings["analyze"] = round(time.perf_counter() - t, 2)
    finally:
        await con.close()
    return timings


# -- the bare yardstick ---------------------------------------------------------------------------

BARE_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<table>{% for r in rows %}
<tr data-id="{{ r.id }}"><td>{{ 'Public' if r.public else 'Private' }}</td><td>{{ r.last_message_preview }}</td>
<td>{{ r.waiting_since }}</td><td>{{ r.sla_due_at }}</td><td>{{ r.assignee_id or '' }}</td></tr>{% endfor %}
</table>""")


async def bare(db: c.BenchDB, n: int) -> list[float]:
    from socialcrm import models
    from socialcrm.db import make_engine

    conv = models.Conversation.__table__
    stmt = (sa.select(conv.c.id, conv.c.public, conv.c.last_message_preview, conv.c.waiting_since,
                      conv.c.sla_due_at, conv.c.assignee_id)
            .where(conv.c.status == "open")
            .order_by(conv.c.priority.desc(), conv.c.waiting_since).limit(50))
    engine = make_engine(db.url)
    out = []
    try:
        for i in range(n + 5):
            t = time.perf_counter()
            async with engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
            html = BARE_TEMPLATE.render(rows=rows)
            if i >= 5:   # the first few warm the connection and the statement cache
                out.append(time.perf_counter() - t)
        assert len(rows) == 50 and html
    finally:
        await engine.dispose()
    return out


async def page(base: str, n: int) -> tuple[list[float], int]:
    async with c.client_session(1, cookies=True) as session:
        await c.login(session, base)
        out, size = [], 0
        for i in range(n + 5):
            t = time.perf_counter()
            async with session.get(f"{base}/", allow_redirects=False) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET / answered {resp.status}: {body[:200]!r}")
            if i >= 5:
                out.append(time.perf_counter() - t)
            size = len(body)
    return out, size


async def routing_load_query(db: c.BenchDB, n: int = 5) -> list[float]:
    """routing.online_agents(): run by every ingest batch before it assigns anything."""
    from socialcrm import routing
    from socialcrm.db import make_engine

    engine = make_engine(db.url)
    out = []
    try:
        async with engine.connect() as conn:
            for _ in range(n):
                t = time.perf_counter()
                await routing.online_agents(conn)
                out.append(time.perf_counter() - t)
    finally:
        await engine.dispose()
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fig: dict[str, Any] = {"bench": "inbox", "machine": c.machine(), "rows": args.rows, "requests": args.requests,
                           "database": "postgresql" if args.postgres else "sqlite", "targets": TARGETS}
    key = c.new_key()
    with c.temp_dir(args.keep) as tmp:
        db = await c.create_db(args.postgres, tmp, "inbox")
        try:
            fig["migrate_s"] = round(c.migrate(db, key, tmp), 2)
            fx = await c.seed_basics(db, key, capacity=5)
            from socialcrm.db import make_engine
            engine = make_engine(db.url)
            try:
                team2, ch2 = await c.add_channel(engine, key, SECOND_TEAM, SECOND_ACCOUNT)
                colleague = await c.add_agent(engine, "bench-colleague", [c.TEAM, SECOND_TEAM], capacity=5)
            finally:
                await engine.dispose()
            t = time.perf_counter()
            fig["seed_s_by_table"] = await seed(db, args.rows, (fx.channel_id, ch2), (fx.team_id, team2),
                                                (fx.agent_id, colleague))
            fig["seed_s"] = round(time.perf_counter() - t, 1)
            print(f"seeded {args.rows:,} conversations in {fig['seed_s']} s {fig['seed_s_by_table']}", flush=True)
            with c.socialcrm_server(db, key, tmp, args.log_level) as srv:
                fig["rss_mb_idle"] = srv.rss_mb()
                with c.py_spy(srv.pid, args.profile):
                    lat, size = await page(srv.base, args.requests)
                fig["page"] = c.ms_summary(lat) | {"bytes": size}
                fig["rss_mb"] = srv.rss_mb()
            fig["bare"] = c.ms_summary(await bare(db, args.requests))
            fig["routing_online_agents"] = c.ms_summary(await routing_load_query(db))
        finally:
            await c.drop_db(db, keep=args.keep)
    return fig


def report(fig: dict[str, Any]) -> None:
    page, bare_ = fig["page"], fig["bare"]
    ratio = fig["p95_vs_bare"] = round(page["p95_ms"] / bare_["p95_ms"], 2)
    rss = fig["rss_mb"].get("VmRSS", float("nan"))
    c.print_table(f"inbox page, {fig['rows']:,} conversations ({fig['database']}, {fig['machine']['cores']} cores), "
                  f"{fig['requests']} requests", [
        ("seeding, s", fig["seed_s"], "< 120", c.verdict(fig["seed_s"], 120, False)),
        ("GET / (top 50 + 4 tab counts) p50, ms", page["p50_ms"], "", ""),
        ("GET / p95, ms", page["p95_ms"], "", ""),
        ("bare query + render 50 rows p50, ms", bare_["p50_ms"], "", ""),
        ("bare query + render 50 rows p95, ms", bare_["p95_ms"], "", ""),
        ("p95 page / p95 bare", ratio, "<= 5", c.verdict(ratio, 5, False)),
        ("server RSS after the requests, MB", rss, "<= 250", c.verdict(rss, 250, False)),
        ("routing.online_agents() p50, ms (each ingest batch)", fig["routing_online_agents"]["p50_ms"], "", ""),
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.inbox", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="conversations to seed")
    p.add_argument("--requests", type=int, default=50, help="timed GET / requests (after 5 warm-up ones)")
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--quick", action="store_true", help="50,000 rows, 20 requests")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (server log, SQLite file)")
    p.add_argument("--profile", metavar="FILE", help="py-spy the server during the page requests (collapsed stacks)")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.requests = min(args.rows, 50_000), min(args.requests, 20)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return c.run_main(run, report, args)


if __name__ == "__main__":
    sys.exit(main())
