"""Search over a million messages, through socialcrm.search, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.search [--messages 1000000] [--database both|sqlite|postgresql] [--quick]

Migrates a throwaway database (`socialcrm migrate`: the FTS5 tables and triggers, or the GIN
indexes, exist before any data), then bulk-inserts seeded, realistic data: 3 teams with a
channel each (two share 98 % of the customers, the third has 2 %), one contact and identity per
20 messages, 10 messages per conversation, text drawn with a Zipf-like skew from English care
words, Norwegian words and names, plus a few rare words and stock phrases. The index is fed
while the rows go in (triggers / index maintenance), so the build time includes it. Then it
times typical queries as an agent of a big team (the team filter is part of every query), and
the hardest ones for "newest first" as an agent of the small team (common words, few of them
theirs): p50/p95 per kind over several queries, each run `--repeats` times after one warm-up. PostgreSQL runs on the server of SOCIALCRM_TEST_POSTGRES_URL (else
127.0.0.1:5432) in a new database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import common as c

TARGET_MS = 1000.0
CHUNK = 20_000
T0 = datetime(2026, 1, 1, 8, 0)
FIRST = ("Kari", "Ola", "Per", "Lise", "Nils", "Ingrid", "Erik", "Sofie", "Anders", "Emma", "Jonas", "Nora",
         "Lars", "Maja", "Henrik", "Sara", "Magnus", "Ida", "Sindre", "Åse", "Øystein", "Bjørn", "Elin", "Tor",
         "Astrid", "Sven", "Karin", "Johan", "Linnea", "Oskar", "Freja", "Mikkel", "Ronja", "Emil", "Hedda", "Jon",
         "Tuva", "Even", "Siri", "Vetle")
LAST = ("Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
        "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen", "Dahl", "Jørgensen",
        "Halvorsen", "Henriksen", "Lund", "Sørensen", "Svensson", "Lindqvist", "Åberg", "Smith", "Brown",
        "Bakken", "Moen", "Solberg", "Strand", "Lie", "Ødegård", "Vik", "Holm", "Aas", "Lien", "Sæther", "Ruud")
NORWEGIAN = ("hei", "pakke", "pakken", "levering", "forsinket", "bestilling", "ordre", "refusjon", "faktura",
             "takk", "hjelp", "konto", "passord", "butikk", "kunde", "bytte", "retur", "garanti", "skjerm",
             "lader", "abonnement", "kansellere", "betaling", "kort", "svar", "venter", "fortsatt", "ikke",
             "kommet", "når", "hvor", "hvorfor", "jeg", "du", "vi", "det", "er", "har", "på", "og", "med", "til",
             "fra", "min", "mitt", "blåbær", "sjøpost", "ærlig", "øyeblikk", "åpningstid", "hentested", "sporing",
             "postkontor", "kvittering", "rabatt", "kode", "appen", "krasjer", "innlogging", "størrelse", "farge")
ENGLISH = c.WORDS + ("the", "my", "is", "not", "where", "when", "why", "still", "waiting", "again", "today",
                     "yesterday", "week", "days", "customer", "service", "email", "phone", "ordered", "received",
                     "wrong", "missing", "item", "box", "damaged", "support", "agent", "answer", "question")
SMALL_TEAM_KINDS = ("common word", "two words", "prefix", "no hit")
RARE = ("zyxomat", "kvakksalver", "snøfreser", "fjordhest", "quokka", "tangentbord", "xylofon", "bumerang")
PHRASES = ("late delivery", "ikke kommet", "refund please", "wrong size", "hvor er pakken")
QUERIES = {
    "common word": ["pakke", "order", "hei", "the", "takk"],
    "rare word": ["zyxomat", "kvakksalver", "snøfreser", "quokka"],
    "phrase": ['"late delivery"', '"ikke kommet"', '"hvor er pakken"', '"refund please"'],
    "prefix": ["refu", "forsin", "bestil", "lev", "kvitt"],
    "two words": ["pakke forsinket", "refund card", "passord innlogging"],
    "name": ["Nordmann", "Kari Hansen", "Øystein", "Åse Åberg"],
    "handle": [],             # filled from the generated people: see handle_queries
    "no hit": ["qqqxxyyzz", "flibbertigibbet", '"pakke zyxomat lader"'],
}


# -- data ---------------------------------------------------------------------------------------

class Text:
    """Seeded message text: a Zipf-like draw over a shuffled mix of both languages."""

    def __init__(self, seed: int, n: int) -> None:
        self.rng = random.Random(seed)
        vocab = list(dict.fromkeys(NORWEGIAN + ENGLISH))
        self.rng.shuffle(vocab)
        for fixed, word in enumerate(("pakke", "order", "hei", "the", "takk")):   # the "common" queries
            vocab.remove(word)
            vocab.insert(fixed, word)
        self.vocab = vocab
        self.weights = [1 / (rank + 1) ** 0.9 for rank in range(len(vocab))]
        self.rare_p = 25 / max(n, 1)

    def message(self) -> str:
        words = self.rng.choices(self.vocab, self.weights, k=self.rng.randint(4, 28))
        if self.rng.random() < 0.03:
            words.insert(self.rng.randrange(len(words) + 1), self.rng.choice(PHRASES))
        if self.rng.random() < self.rare_p * len(RARE):
            words.insert(self.rng.randrange(len(words) + 1), self.rng.choice(RARE))
        if self.rng.random() < 0.05:
            words += ["hilsen", self.rng.choice(FIRST), self.rng.choice(LAST)]
        text = " ".join(words)
        return text[0].upper() + text[1:] + self.rng.choice((".", "?", "!", " 🙂", ""))


def slot(p: int) -> int:
    """Which channel and team person p writes to: two big teams, and a small one with 2 %."""
    return 2 if p % 50 == 1 else p % 2


def handle_queries(n_messages: int) -> list[str]:
    """Handles of people who wrote to the first team (even numbers), with and without @."""
    people = max(1, n_messages // 20)
    picks = [p - p % 2 or 2 for p in (people // 7, people // 3, people - 1)]
    return [("@" if n % 2 else "") + person(p)[1] for n, p in enumerate(picks)]


def person(i: int) -> tuple[str, str]:
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    return f"{first} {last}", f"{first}_{last}_{i % 97}".lower()


def rows(n_messages: int, channels: tuple[int, ...], teams: tuple[int, ...], seed: int = 7) -> dict[str, Any]:
    """contacts, identities, conversations and messages (as tuples) for n_messages."""
    n_conv = max(1, n_messages // 10)
    n_people = max(1, n_messages // 20)
    text = Text(seed, n_messages)
    contacts, identities, convs, messages = [], [], [], []
    for p in range(1, n_people + 1):
        name, handle = person(p)
        contacts.append((p, name, T0))
        identities.append((p, channels[slot(p)], p, p, f"u{p}", name, handle, "", False, False))
    for k in range(1, n_conv + 1):
        p = (k - 1) % n_people + 1
        public = k % 3 == 0
        start = T0 + timedelta(seconds=k * 20)
        convs.append((k, channels[slot(p)], teams[slot(p)], p, p, f"t{k}", f"t{k}", public, "resolved" if k % 4 else "open",
                      0, "", "", start, start))
    for i in range(1, n_messages + 1):
        k = (i - 1) % n_conv + 1
        conv = convs[k - 1]
        at = conv[12] + timedelta(minutes=(i - 1) // n_conv)
        inbound = text.rng.random() < 0.7
        messages.append((i, k, conv[1], f"m{i}", "in" if inbound else "out", "message", conv[7],
                         conv[3] if inbound else None, text.message(), "[]", "received", "", "", False,
                         "{}", at))
    return {"contact": contacts, "identity": identities, "conversation": convs, "message": messages}


COLUMNS = {
    "contact": ("id", "name", "created_at"),
    "identity": ("id", "channel_id", "contact_id", "original_contact_id", "external_id", "name", "handle",
                 "avatar_url", "is_self", "unreachable"),
    "conversation": ("id", "channel_id", "team_id", "contact_id", "identity_id", "thread_key", "thread_external_id",
                     "public", "status", "priority", "last_message_preview", "assignment_reason", "created_at",
                     "last_message_at"),
    "message": ("id", "conversation_id", "channel_id", "external_id", "direction", "kind", "public",
                "author_identity_id", "text", "attachments", "status", "error", "moderation", "deleted",
                "reactions", "created_at"),
}


def _sqlite_value(v: Any) -> Any:
    return v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v


def insert_sqlite(path: str, data: dict[str, Any]) -> dict[str, float]:
    took = {}
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for table, cols in COLUMNS.items():
            t = time.perf_counter()
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            for start in range(0, len(data[table]), CHUNK):
                conn.executemany(sql, [tuple(map(_sqlite_value, r)) for r in data[table][start:start + CHUNK]])
                conn.commit()
            took[table] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        conn.execute("PRAGMA analysis_limit=1000")
        conn.execute("ANALYZE")
        conn.execute("INSERT INTO message_fts(message_fts) VALUES ('optimize')")
        conn.commit()
        took["analyze_optimize"] = round(time.perf_counter() - t, 1)
    finally:
        conn.close()
    return took


async def insert_postgres(url: str, data: dict[str, Any]) -> dict[str, float]:
    import asyncpg

    took = {}
    conn = await asyncpg.connect(url)
    try:
        for table, cols in COLUMNS.items():
            t = time.perf_counter()
            for start in range(0, len(data[table]), CHUNK * 5):
                await conn.copy_records_to_table(table, records=data[table][start:start + CHUNK * 5], columns=cols)
            took[table] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        for table in COLUMNS:
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("VACUUM ANALYZE")
        took["analyze"] = round(time.perf_counter() - t, 1)
    finally:
        await conn.close()
    return took


# -- databases ----------------------------------------------------------------------------------

def pg_server() -> str:
    return (os.environ.get("SOCIALCRM_TEST_POSTGRES_URL") or c.PG_ADMIN_URL).rsplit("/", 1)[0]


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{pg_server()}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def open_db(kind: str, tmp: Path) -> c.BenchDB:
    if kind == "sqlite":
        path = tmp / "search.db"
        return c.BenchDB(f"sqlite:///{path}", f"sqlite+aiosqlite:///{path}", "sqlite")
    name = f"bench_search_{os.getpid()}"
    await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await pg_admin(f'CREATE DATABASE "{name}"')
    return c.BenchDB(f"{pg_server()}/{name}", "", "postgresql", name)


async def close_db(db: c.BenchDB, keep: bool) -> None:
    if db.pg_name and not keep:
        await pg_admin(f'DROP DATABASE IF EXISTS "{db.pg_name}" WITH (FORCE)')


async def basics(db: c.BenchDB, key: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    from socialcrm.db import make_engine

    engine = make_engine(db.url)
    try:
        team1, ch1 = await c.add_channel(engine, key, c.TEAM)
        team2, ch2 = await c.add_channel(engine, key, "Bench other team", "bench-brand-2")
        team3, ch3 = await c.add_channel(engine, key, "Bench small team", "bench-brand-3")
        await c.add_agent(engine, c.AGENT, [c.TEAM])
    finally:
        await engine.dispose()
    return (ch1, ch2, ch3), (team1, team2, team3)


# -- timing -------------------------------------------------------------------------------------

async def time_queries(db: c.BenchDB, team_id: int, repeats: int, queries: dict[str, list[str]]) -> dict[str, Any]:
    from socialcrm import search
    from socialcrm.db import make_engine
    from socialcrm.users import Viewer

    agent = Viewer(id=1, username=c.AGENT, display_name="", role="agent", online=True, session_epoch=0,
                   team_ids=frozenset({team_id}))
    engine = make_engine(db.url)
    out: dict[str, Any] = {}
    try:
        for kind, texts in queries.items():
            lat, hits = [], []
            for q in texts:
                page = await search.search(engine, agent, q)            # warm-up
                hits.append(len(page.results))
                for _ in range(repeats):
                    t = time.perf_counter()
                    await search.search(engine, agent, q)
                    lat.append(time.perf_counter() - t)
            out[kind] = c.ms_summary(lat) | {"queries": len(texts), "results_first_page": hits}
    finally:
        await engine.dispose()
    return out


async def one_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    fig: dict[str, Any] = {}
    key = c.new_key()
    with c.temp_dir(args.keep) as tmp:
        db = await open_db(kind, tmp)
        try:
            fig["migrate_s"] = round(c.migrate(db, key, tmp), 1)
            channels, teams = await basics(db, key)
            t = time.perf_counter()
            data = rows(args.messages, channels, teams)
            fig["generate_s"] = round(time.perf_counter() - t, 1)
            t = time.perf_counter()
            if kind == "sqlite":
                fig["build_s_by_table"] = await asyncio.to_thread(insert_sqlite, db.url.split("///", 1)[1], data)
            else:
                fig["build_s_by_table"] = await insert_postgres(db.url, data)
            fig["build_s"] = round(time.perf_counter() - t, 1)
            del data
            print(f"{kind}: {args.messages:,} messages inserted and indexed in {fig['build_s']} s "
                  f"{fig['build_s_by_table']}", flush=True)
            everything = QUERIES | {"handle": handle_queries(args.messages)}
            fig["queries"] = await time_queries(db, teams[0], args.repeats, everything)
            # The worst case for "newest first": common words, but few of them in the viewer's team.
            small = {k: everything[k] for k in SMALL_TEAM_KINDS}
            fig["queries_small_team"] = await time_queries(db, teams[2], args.repeats, small)
        finally:
            await close_db(db, args.keep)
    return fig


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fig: dict[str, Any] = {"bench": "search", "machine": c.machine(), "messages": args.messages,
                           "repeats": args.repeats, "target_p95_ms": TARGET_MS}
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    for kind in kinds:
        fig[kind] = await one_database(kind, args)
    return fig


def report(fig: dict[str, Any]) -> None:
    for kind in ("sqlite", "postgresql"):
        if kind not in fig:
            continue
        part = fig[kind]
        rows_ = [("build (insert + index), s", part["build_s"], "", "")]
        for label, key in (("", "queries"), ("small team (2 %), ", "queries_small_team")):
            for name, q in part[key].items():
                rows_.append((f"{label}{name}: p50 / p95 ms", f"{q['p50_ms']:.1f} / {q['p95_ms']:.1f}",
                              f"p95 < {TARGET_MS:.0f}", c.verdict(q["p95_ms"], TARGET_MS, False)))
        c.print_table(f"search, {fig['messages']:,} messages ({kind}, {fig['machine']['cores']} cores), "
                      f"agent of one team, {fig['repeats']} runs per query", rows_)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--database", choices=("both", "sqlite", "postgresql"), default="both")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each query (after one warm-up)")
    p.add_argument("--quick", action="store_true", help="100,000 messages")
    p.add_argument("--keep", action="store_true", help="keep the temp dir and the PostgreSQL database")
    args = p.parse_args(argv)
    if args.quick:
        args.messages = min(args.messages, 100_000)
    return args


def main(argv: list[str] | None = None) -> int:
    return c.run_main(run, report, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
