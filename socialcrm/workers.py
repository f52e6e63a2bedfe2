"""`socialcrm serve --workers N`: N server processes on one port, watched by a small parent.

Each worker is a fresh interpreter running `socialcrm serve --worker` (no fork after an event
loop exists), with its own Core, engine pool and scheduler, and binds the port with
SO_REUSEPORT, so the kernel spreads connections over them. The parent opens nothing they
share: it starts them, forwards SIGTERM/SIGINT once (workers run in their own session, so a
Ctrl-C in the terminal is not delivered twice), restarts a worker that dies unexpectedly
after a growing pause, and gives up with exit code 1 when workers keep dying. A worker whose
parent is gone stops by itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)


def worker_argv(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "socialcrm", "serve", "--host", host, "--port", str(port), "--worker"]


@dataclass
class Slot:
    """One worker place: its process, and when to start it again after it died."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    restart_at: float = 0.0
    deaths: int = 0


class Supervisor:
    def __init__(self, argv: Sequence[str], workers: int, *, max_deaths: int = 5, window_s: float = 60.0,
                 backoff_first_s: float = 0.5, backoff_cap_s: float = 10.0, stop_timeout_s: float = 20.0) -> None:
        self.argv, self.slots = list(argv), [Slot(i) for i in range(workers)]
        self.max_deaths, self.window_s = max_deaths, window_s
        self.backoff_first_s, self.backoff_cap_s, self.stop_timeout_s = backoff_first_s, backoff_cap_s, stop_timeout_s
        self._deaths: deque[float] = deque()
        self._stop = threading.Event()
        self._signal = signal.SIGTERM

    @property
    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.slots if s.proc is not None and s.proc.poll() is None]

    def stop(self, signum: int = signal.SIGTERM, _frame: object = None) -> None:
        self._signal = signal.Signals(signum)
        self._stop.set()

    def run(self) -> int:
        """Until stopped (0) or until workers died `max_deaths` times within `window_s` (1)."""
        previous = self._install_handlers()
        try:
            for slot in self.slots:
                self._start(slot)
            while not self._stop.wait(0.1):
                if not self._watch():
                    log.error("workers keep dying (%d times in %.0f s); stopping", self.max_deaths, self.window_s)
                    self._terminate_all(signal.SIGTERM)
                    return 1
            self._terminate_all(self._signal)
            return 0
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _install_handlers(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}

    def _start(self, slot: Slot) -> None:
        slot.proc = subprocess.Popen(self.argv, start_new_session=True)
        log.info("worker %d started (pid %d)", slot.index, slot.proc.pid)

    def _watch(self) -> bool:
        """Restart dead workers when their pause is over; False when it is time to give up."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is not None:
                self._died(slot, now)
            elif slot.proc is None and now >= slot.restart_at:
                self._start(slot)
        while self._deaths and self._deaths[0] < now - self.window_s:
            self._deaths.popleft()
        return len(self._deaths) < self.max_deaths

    def _died(self, slot: Slot, now: float) -> None:
        assert slot.proc is not None
        slot.deaths += 1
        self._deaths.append(now)
        pause = min(self.backoff_cap_s, self.backoff_first_s * 2 ** (slot.deaths - 1))
        log.warning("worker %d (pid %d) exited with %s; restarting in %.1f s",
                    slot.index, slot.proc.pid, slot.proc.returncode, pause)
        slot.proc, slot.restart_at = None, now + pause

    def _terminate_all(self, signum: int) -> None:
        running = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for proc in running:
            proc.send_signal(signum)
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait(5)


async def stop_when_orphaned(app: object) -> AsyncIterator[None]:
    """Cleanup context for workers: if the parent dies (even by SIGKILL), stop gracefully rather
    than serve on unsupervised."""
    parent = os.getppid()

    async def watch() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        log.warning("the supervising process is gone; stopping this worker")
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()
