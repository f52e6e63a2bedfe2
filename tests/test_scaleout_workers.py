"""`socialcrm serve --workers N`: refused on SQLite; on PostgreSQL N processes share one port,
a worker that dies is restarted, SIGTERM stops them all; a supervisor whose workers keep
dying gives up with exit code 1. Real processes on 127.0.0.1, every wait bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from socialcrm.cli import main
from socialcrm.workers import Supervisor
from tests.conftest import PG_SKIP, PG_URL, run_blocking
from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent


def eventually(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


# -- refusing SQLite ------------------------------------------------------------------------------

def test_more_than_one_worker_on_sqlite_is_refused_with_a_reason(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SOCIALCRM_DATABASE_URL", f"sqlite:///{tmp_path}/one.db")
    assert main(["serve", "--workers", "2"]) == 2
    assert "--workers above 1 needs PostgreSQL" in capsys.readouterr().err
    assert main(["serve", "--workers", "0"]) == 2
    assert not (tmp_path / "one.db").exists()              # refused before touching anything


# -- the supervisor alone ---------------------------------------------------------------------

def test_workers_that_keep_dying_make_the_supervisor_give_up_with_1():
    sup = Supervisor([sys.executable, "-c", "raise SystemExit(3)"], 2, max_deaths=4, backoff_first_s=0.01)
    started = time.monotonic()
    assert sup.run() == 1
    assert time.monotonic() - started < 20


def test_a_killed_worker_is_restarted_and_stop_ends_them_all():
    sup = Supervisor([sys.executable, "-c", "import time; time.sleep(60)"], 2, backoff_first_s=0.05)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(sup.run()))
    thread.start()
    try:
        eventually(lambda: len(sup.pids) == 2, 10, "two workers")
        first, second = sup.pids
        os.kill(first, signal.SIGKILL)
        eventually(lambda: len(sup.pids) == 2 and first not in sup.pids, 10, "a new worker")
        assert second in sup.pids
        running = sup.pids
    finally:
        sup.stop()
        thread.join(30)
    assert result == [0]
    for pid in running:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# -- the real server on PostgreSQL ----------------------------------------------------------------

@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty database, so `serve --migrate` builds the schema as in production."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    import asyncpg

    name = f"socialcrm_workers_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_blocking(admin(f'CREATE DATABASE "{name}"'))
    yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    run_blocking(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_two_workers_share_a_port_survive_a_crash_and_stop_on_sigterm(fresh_pg_url, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALCRM_")}
    env.update(SOCIALCRM_DATABASE_URL=fresh_pg_url, SOCIALCRM_SECRET_KEY=Fernet.generate_key().decode(),
               SOCIALCRM_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    log = open(tmp_path / "serve.log", "wb")   # noqa: SIM115
    parent = subprocess.Popen([sys.executable, "-m", "socialcrm", "serve", "--migrate", "--workers", "2",
                               "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: answers(port), 60, "the server")
        eventually(lambda: len(children_of(parent.pid)) == 2, 30, "two workers")
        workers = children_of(parent.pid)
        time.sleep(1.5)
        assert children_of(parent.pid) == workers          # both bound the one port: none died
        assert all(answers(port) for _ in range(20))

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        eventually(lambda: len(children_of(parent.pid) - {victim}) == 2, 30, "a replacement worker")
        eventually(lambda: answers(port), 30, "the server after the crash")

        now_running = children_of(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0
        for pid in now_running:
            eventually(lambda pid=pid: not Path(f"/proc/{pid}").exists()
                       or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
                       10, f"worker {pid} to stop")
        assert not answers(port)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        log.close()
        print((tmp_path / "serve.log").read_text(errors="replace")[-3000:])
