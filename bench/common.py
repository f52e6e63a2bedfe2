"""Helpers shared by the benchmarks: databases, server subprocesses, signed deliveries, load, stats.

Everything talks to 127.0.0.1 only; every loop is bounded by a count and a deadline.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import hmac
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
ACCOUNT_ID = "bench-brand"
WEBHOOK_SECRET = "bench-webhook-secret"
AGENT = "bench-agent"
PASSWORD = "bench password 123"
TEAM = "Bench care"
HOST = "127.0.0.1"

_running: list[Server] = []


# -- statistics and printing ------------------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks; nan for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of latencies given in seconds, in milliseconds."""
    return {f"p{p}_ms": round(percentile(seconds, p) * 1000, 2) for p in (50, 95, 99)} | {
        "max_ms": round(max(seconds) * 1000, 2) if seconds else float("nan")}


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    if math.isnan(value):
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


def print_table(title: str, rows: Sequence[Sequence[Any]], header: Sequence[str] = ("measure", "value", "target", "")) -> None:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(len(header))]
    print(f"\n== {title}")
    for n, r in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_json(figures: dict[str, Any]) -> None:
    """The last line of every benchmark: all figures, machine-readable."""
    print(json.dumps(figures, sort_keys=True, default=str), flush=True)


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "python": sys.version.split()[0]}


# -- databases ----------------------------------------------------------------------------------

@dataclass
class BenchDB:
    """A fresh database for one run: SQLite in a temp dir, or a new PostgreSQL database."""

    url: str           # what the server gets (plain sqlite:// or postgresql://)
    ro_url: str        # for read-only polling from the benchmark process
    kind: str
    pg_name: str | None = None

    @property
    def async_url(self) -> str:
        from socialcrm.config import normalize_database_url
        return normalize_database_url(self.url)


async def create_db(postgres: bool, tmp: Path, tag: str) -> BenchDB:
    if not postgres:
        path = tmp / f"{tag}.db"
        return BenchDB(f"sqlite:///{path}", f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true", "sqlite")
    import asyncpg

    name = f"bench_{tag}_{os.getpid()}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return BenchDB(f"{base}/{name}", f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}", "postgresql", name)


async def drop_db(db: BenchDB, keep: bool = False) -> None:
    if db.pg_name is None:
        return
    if keep:
        print(f"(kept database {db.url}; drop it with: DROP DATABASE \"{db.pg_name}\")")
        return
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db.pg_name}" WITH (FORCE)')
    finally:
        await conn.close()


def ro_engine(db: BenchDB) -> Any:
    """A separate engine for polling; it never writes."""
    from sqlalchemy.ext.asyncio import create_async_engine

    if db.kind == "sqlite":
        return create_async_engine(db.ro_url, connect_args={"timeout": 5})
    return create_async_engine(db.ro_url, pool_size=2,
                               connect_args={"server_settings": {"default_transaction_read_only": "on"}})


def migrate(db: BenchDB, key: str, tmp: Path) -> float:
    """`socialcrm migrate` in a subprocess, as an operator would; returns seconds taken."""
    t0 = time.perf_counter()
    out = subprocess.run([str(BIN / "socialcrm"), "migrate"], check=False, cwd=tmp, env=server_env(db, 0, key, tmp),
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"socialcrm migrate failed:\n{out.stdout}\n{out.stderr}")
    return time.perf_counter() - t0


@dataclass
class Fixture:
    team_id: int
    agent_id: int
    channel_id: int


async def add_agent(engine: Any, username: str, teams: Sequence[str], *, capacity: int = 10**9,
                    online: bool = True) -> int:
    """An agent of `teams` (created by name), online with room for everything by default."""
    from socialcrm import models
    from socialcrm.users import create_user

    user = await create_user(engine, username, PASSWORD, "agent", username.replace("-", " ").title(), teams)
    user_t = models.User.__table__
    async with engine.begin() as conn:
        await conn.execute(user_t.update().where(user_t.c.id == user.id).values(
            capacity=capacity, online=online, online_since=models.utcnow() if online else None))
    assert user.id is not None
    return user.id


async def add_channel(engine: Any, key: str, team: str, account_id: str = ACCOUNT_ID) -> tuple[int, int]:
    """(team id, channel id): a simulator channel signed with WEBHOOK_SECRET, for `team`."""
    from socialcrm.channels import create_channel
    from socialcrm.registry import Registry
    from socialcrm.users import ensure_team
    from socialcrm.vault import Vault

    async with engine.begin() as conn:
        team_id = await ensure_team(conn, team)
    channel_id = await create_channel(
        engine, Registry.from_entry_points(), Vault([key.encode()]), connector="simulator",
        name=f"Bench {account_id}", team_id=team_id,
        settings={"account_id": account_id, "webhook_secret": WEBHOOK_SECRET, "api_token": "unused",
                  "api_base_url": "http://127.0.0.1:9"})
    return team_id, channel_id


async def seed_basics(db: BenchDB, key: str, *, capacity: int = 10**9) -> Fixture:
    """A team, one online agent with room for everything, and one simulator channel."""
    from socialcrm.db import make_engine

    engine = make_engine(db.url)
    try:
        team_id, channel_id = await add_channel(engine, key, TEAM)
        agent_id = await add_agent(engine, AGENT, [TEAM], capacity=capacity)
        return Fixture(team_id, agent_id, channel_id)
    finally:
        await engine.dispose()


def new_key() -> str:
    from cryptography.fernet import Fernet
    return Fernet.generate_key().decode()


@contextmanager
def temp_dir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="socialcrm-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"(kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


# -- server subprocesses ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_env(db: BenchDB, port: int, key: str, tmp: Path, log_level: str = "INFO") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALCRM_")}
    env.update(SOCIALCRM_DATABASE_URL=db.url, SOCIALCRM_HOST=HOST, SOCIALCRM_PORT=str(port),
               SOCIALCRM_SECRET_KEY=key, SOCIALCRM_RUN_SCHEDULER="false", SOCIALCRM_DATA_DIR=str(tmp),
               SOCIALCRM_LOG_LEVEL=log_level, SOCIALCRM_PUBLIC_URL=f"http://{HOST}:{port}",
               PYTHONPATH=str(ROOT))
    return env


@dataclass
class Server:
    """A server in its own process group, stopped (SIGTERM, then SIGKILL) on exit or Ctrl-C."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: Any = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (peak) of the server process, in MB."""
        out: dict[str, float] = {}
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return out

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self in _running:
            _running.remove(self)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one when pid is None)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


class Budget:
    """A wall-clock allowance shared by the phases of a run, so defaults finish in minutes."""

    def __init__(self, seconds: float) -> None:
        self.until = time.perf_counter() + seconds

    def left(self, cap: float | None = None) -> float:
        left = max(0.0, self.until - time.perf_counter())
        return left if cap is None else min(cap, left)


def _stop_all() -> None:
    while _running:
        _running[-1].stop(timeout=5)   # removes itself from _running


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)   # unwinds the `with` blocks, which stop the servers


atexit.register(_stop_all)
if hasattr(signal, "SIGTERM"):
    signal.signal(signal.SIGTERM, _on_sigterm)


@contextmanager
def server(name: str, cmd: list[str], env: dict[str, str], port: int, log_dir: Path,
           ready_path: str = "/healthz", timeout: float = 60.0) -> Iterator[Server]:
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115  (open while the server runs; Server.stop closes it)
    proc = subprocess.Popen(cmd, cwd=log_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)   # Ctrl-C reaches us; we stop it in order
    srv = Server(name, port, proc, log_path, log)
    _running.append(srv)
    try:
        _wait_ready(srv, ready_path, timeout)
        yield srv
    finally:
        srv.stop()


def _wait_ready(srv: Server, path: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"{srv.name} exited with {srv.proc.returncode}:\n{srv.log_tail()}")
        try:
            with urllib.request.urlopen(srv.base + path, timeout=2) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{srv.name} did not answer {path} within {timeout:.0f}s:\n{srv.log_tail()}")


@contextmanager
def socialcrm_server(db: BenchDB, key: str, tmp: Path, log_level: str = "INFO") -> Iterator[Server]:
    """The real thing: `socialcrm serve` with the scheduler off."""
    port = free_port()
    cmd = [str(BIN / "socialcrm"), "serve", "--host", HOST, "--port", str(port)]
    with server("socialcrm", cmd, server_env(db, port, key, tmp, log_level), port, tmp) as srv:
        yield srv


# -- simulator deliveries -----------------------------------------------------------------------

WORDS = ("order", "parcel", "refund", "delivery", "late", "broken", "hello", "thanks", "please",
         "help", "account", "password", "invoice", "shipping", "tracking", "number", "store",
         "app", "crash", "login", "discount", "coupon", "size", "colour", "exchange", "return",
         "warranty", "battery", "screen", "charger", "subscription", "cancel", "renew", "card",
         "payment")


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Delivery:
    external_id: str
    thread_key: str        # what the conversation is keyed by (ingest.thread_key)
    body: bytes
    headers: dict[str, str]


def make_deliveries(n: int, prefix: str, *, customers: int, posts: int = 25, text_bytes: int = 1900,
                    dm_share: float = 0.6, seed: int = 1, account_id: str = ACCOUNT_ID) -> list[Delivery]:
    """n signed one-event deliveries (~2 KB each), unique ids, DMs and public comments."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    out = []
    for i in range(n):
        cust = f"{prefix}-cust-{rng.randrange(customers)}"
        dm = rng.random() < dm_share
        thread = cust if dm else f"{prefix}-post-{rng.randrange(posts)}"
        words = []
        size = 0
        while size < text_bytes:
            w = rng.choice(WORDS)
            words.append(w)
            size += len(w) + 1
        item = {"type": "dm" if dm else "comment", "id": f"{prefix}-m-{i}", "timestamp": now_ms - (n - i),
                "text": " ".join(words)[:text_bytes], "thread_id": thread,
                "author": {"id": cust, "name": f"Customer {cust}", "handle": cust,
                           "followers": rng.choice((None, 10, 500, 5000, 50000))}}
        body = json.dumps({"account_id": account_id, "events": [item]}).encode()
        headers = {"X-Simulator-Signature": sign(body), "Content-Type": "application/json"}
        out.append(Delivery(item["id"], thread if dm else f"{thread}#{cust}", body, headers))
    return out


def webhook_url(base: str, channel_id: int) -> str:
    return f"{base}/webhooks/simulator/{channel_id}"


# -- load ---------------------------------------------------------------------------------------

def client_session(concurrency: int, cookies: bool = False) -> aiohttp.ClientSession:
    jar = aiohttp.CookieJar(unsafe=True) if cookies else aiohttp.DummyCookieJar()   # unsafe: IP hosts
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                 timeout=aiohttp.ClientTimeout(total=60), cookie_jar=jar)


@dataclass
class LoadResult:
    sent: int
    elapsed: float
    latencies: list[float]          # seconds, successful answers only
    statuses: dict[int, int]
    started: float = 0.0            # perf_counter at the first send
    acked: list[Delivery] = field(default_factory=list, repr=False)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def figures(self) -> dict[str, Any]:
        return {"sent": self.sent, "ok": self.ok, "elapsed_s": round(self.elapsed, 3), "per_s": round(self.rate, 1),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, **ms_summary(self.latencies),
                **self.cpu}


async def _post(session: aiohttp.ClientSession, url: str, d: Delivery) -> int:
    try:
        async with session.post(url, data=d.body, headers=d.headers) as resp:
            await resp.read()
            return resp.status
    except (TimeoutError, aiohttp.ClientError):
        return 0


async def closed_loop(session: aiohttp.ClientSession, url: str, deliveries: Sequence[Delivery],
                      concurrency: int, deadline_s: float = 120.0) -> LoadResult:
    """`concurrency` workers, each sending the next delivery as soon as its previous one is answered."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    acked: list[Delivery] = []
    it = iter(deliveries)
    stop_at = time.perf_counter() + deadline_s
    sent = 0

    async def worker() -> None:
        nonlocal sent
        for d in it:
            if time.perf_counter() > stop_at:
                return
            sent += 1
            t = time.perf_counter()
            status = await _post(session, url, d)
            if status == 200:
                latencies.append(time.perf_counter() - t)
                acked.append(d)
            statuses[status] = statuses.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(sent, time.perf_counter() - t0, latencies, statuses, t0, acked)


async def open_loop(session: aiohttp.ClientSession, url: str, deliveries: Sequence[Delivery], rate: float,
                    max_in_flight: int = 2000, drain_s: float = 30.0) -> LoadResult:
    """Offer `rate` deliveries/s whatever the answers do; latency counts from the scheduled send time
    (no coordinated omission), so client lag is included, as a platform would see it."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    acked: list[Delivery] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def one(d: Delivery, due: float) -> None:
        status = await _post(session, url, d)
        if status == 200:
            latencies.append(time.perf_counter() - due)
            acked.append(d)
        statuses[status] = statuses.get(status, 0) + 1

    t0 = time.perf_counter()
    sent = 0
    for i, d in enumerate(deliveries):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            statuses[-1] = statuses.get(-1, 0) + 1   # shed by the client: the server is too far behind
            continue
        task = asyncio.create_task(one(d, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        sent += 1
    if in_flight:
        _, late = await asyncio.wait(in_flight, timeout=drain_s)
        for task in late:
            task.cancel()
        if late:
            statuses[-2] = len(late)   # still unanswered after drain_s: given up
        await asyncio.gather(*late, return_exceptions=True)
    return LoadResult(sent, time.perf_counter() - t0, latencies, statuses, t0, acked)


# -- signing in ---------------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def login(session: aiohttp.ClientSession, base: str, username: str = AGENT, password: str = PASSWORD) -> None:
    """The login form, CSRF token included; the session cookie lands in the session's jar."""
    async with session.get(f"{base}/login") as resp:
        page = await resp.text()
    match = _CSRF.search(page)
    if match is None:
        raise RuntimeError("no csrf_token in the login form")
    form = {"csrf_token": match.group(1), "next": "/", "username": username, "password": password}
    async with session.post(f"{base}/login", data=form, allow_redirects=False) as resp:
        if resp.status not in (302, 303):
            raise RuntimeError(f"login failed: {resp.status} {(await resp.text())[:200]}")


# -- profiling ----------------------------------------------------------------------------------

@contextmanager
def py_spy(pid: int, out: str | None, rate: int = 200) -> Iterator[None]:
    """Sample `pid` with py-spy (if installed in the venv) while the block runs; collapsed stacks
    (`--format raw`, one "frame;frame;... count" line each) are written to `out`."""
    exe = BIN / "py-spy"
    if not out or not exe.exists():
        if out:
            print(f"(no profile: {exe} is missing; `pip install py-spy` into the venv)")
        yield
        return
    proc = subprocess.Popen([str(exe), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--idle", "--threads",
                             "--nonblocking", "--output", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)   # let it attach
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"(py-spy profile of pid {pid} written to {out})")


def top_frames(raw_path: str, match: str = "socialcrm", limit: int = 15) -> list[tuple[str, float]]:
    """Share of samples in which a frame whose text contains `match` is on the stack (inclusive)."""
    totals: dict[str, int] = {}
    n = 0
    for line in Path(raw_path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n += int(count)
        for frame in set(stack.split(";")):
            if match in frame:
                totals[frame] = totals.get(frame, 0) + int(count)
    return [(f, round(100 * v / n, 1)) for f, v in sorted(totals.items(), key=lambda kv: -kv[1])[:limit]]


def run_main(run: Any, report: Any, args: Any) -> int:
    """The shared main of every benchmark: run, print the table and the JSON line; Ctrl-C cleans up."""
    t0 = time.perf_counter()
    try:
        fig = asyncio.run(run(args))
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped and temporary data removed", file=sys.stderr)
        return 130
    report(fig)
    fig["wall_s"] = round(time.perf_counter() - t0, 1)
    print(f"\n(wall time {fig['wall_s']} s)")
    print_json(fig)
    return 0
