"""Everyday operations drop nothing: a gunicorn reload under load fails no request, and restarting
either worker under a write burst loses no invalidation."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.burst import WriteBurst
from tests.faults.test_faults import CODES, assert_consistent, seeded  # noqa: F401 (a fixture)
from tests.support import Background, program_pid, supervisorctl, wait_until

CLIENTS = 8


def gunicorn_workers(master: int) -> set[int]:
    with open(f"/proc/{master}/task/{master}/children") as children:
        return {int(pid) for pid in children.read().split()}


class SteadyClients(Background):
    """CLIENTS threads, each a keep-alive session asking in a loop; every failure is kept."""

    def __init__(self, url: str):
        self.url, self.ok, self.failures = url, 0, []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._ask, daemon=True) for _ in range(CLIENTS)]
        self._lock = threading.Lock()

    def _ask(self) -> None:
        with requests.Session() as http:
            while not self._stop.is_set():
                try:
                    response = http.get(self.url, timeout=10)
                    failed = None if response.status_code == 200 else f"HTTP {response.status_code}"
                except requests.RequestException as exc:
                    failed = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    if failed:
                        self.failures.append(failed)
                    else:
                        self.ok += 1

    def await_ok(self, more: int) -> None:
        target = self.ok + more
        wait_until(lambda: self.ok >= target, timeout=30, message=f"{more} more answered requests")


def test_hup_reloads_gunicorn_without_failing_a_request(base_url):
    master = program_pid("web")
    before = gunicorn_workers(master)
    with SteadyClients(f"{base_url}/cities/BGR") as clients:
        clients.await_ok(200)
        supervisorctl("signal", "HUP", "web")
        # The reload is done when none of the old workers is left and new ones serve.
        wait_until(lambda: not gunicorn_workers(master) & before and gunicorn_workers(master), timeout=60,
                   message="gunicorn to replace every worker after HUP", interval=0.1)
        clients.await_ok(200)
    assert program_pid("web") == master, "HUP must reload in place, not restart the master"
    print(f"HUP under {CLIENTS} clients: {clients.ok} answered, {len(clients.failures)} failed")
    assert clients.failures == [], f"{len(clients.failures)} of {clients.ok + len(clients.failures)} failed: " \
                                   f"{clients.failures[:5]}"


@pytest.mark.slow
@pytest.mark.parametrize("program", ["pg_listener", "kafka_cleaner"])
def test_restarting_a_worker_under_a_write_burst_loses_no_invalidation(settings, base_url, seeded, program,
                                                                     fault_times):
    """The burst ends while the program is down, so the last write to each code is one the old process
    never saw: only what the restart keeps (the outbox, the committed offsets) can carry it."""
    old = program_pid(program)

    def pid() -> int:  # 0 while stopped
        return int(supervisorctl("pid", program, check=False).stdout.strip() or 0)

    restart = threading.Thread(target=lambda: supervisorctl("restart", program, check=False))
    with WriteBurst(settings.database_url, base_url, CODES) as burst:
        burst.await_writes(40)
        restart.start()
        wait_until(lambda: pid() != old, timeout=30, message=f"{program} to stop", interval=0.005)
        burst.await_writes(5)
    restart.join(timeout=60)
    assert burst.reads > 0
    wait_until(lambda: pid() not in (0, old), timeout=30, message=f"{program} to start again")
    assert_consistent(settings, f"supervisorctl restart {program} under a burst", time.monotonic(), fault_times)
