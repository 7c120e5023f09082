"""pg_listener processes a test starts itself, in place of the supervised one, with its own settings."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2

from tests.support import ROOT, stop_program, supervisorctl, wait_until


class Listener:
    """One `python -m workers.pg_listener` process; its JSON log lines go to a file the test reads."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        self.log_file = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workers.pg_listener"], cwd=ROOT, stdout=self.log_file,
            stderr=subprocess.STDOUT, env={**os.environ, **env})

    @property
    def pid(self) -> int:
        return self.process.pid

    def messages(self, since: int = 0) -> list[dict]:
        """Our own log records (JSON lines of the pg_listener logger), from line `since` on."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines()[since:]:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("logger") == "pg_listener":
                records.append(record)
        return records

    def lines(self) -> int:
        return len(self.log_path.read_text(errors="replace").splitlines())

    def backend(self, conn) -> tuple[str, str] | None:
        """(state, query) of this listener's Postgres session, or None before it connected."""
        with conn.cursor() as cur:
            cur.execute("SELECT state, query FROM pg_stat_activity WHERE application_name = %s",
                        (f"pg_listener {self.pid}",))
            return cur.fetchone()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log_file.close()


def in_a_drain(conn) -> list[int]:
    """OS pids of the listeners that hold a drain's transaction open (rows taken, Kafka not yet acked)."""
    with conn.cursor() as cur:
        cur.execute("SELECT application_name FROM pg_stat_activity"
                    " WHERE application_name LIKE 'pg_listener %%' AND state = 'idle in transaction'")
        return [int(name.split()[1]) for (name,) in cur.fetchall()]


class OwnListeners:
    """Stops the supervised pg_listener; starts listeners on demand; stops them and restores it after."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path, self.database_url, self.started = tmp_path, database_url, []

    def __enter__(self) -> "OwnListeners":
        stop_program("pg_listener")  # asserts STOPPED: no third listener beside the test's own
        return self

    def start(self, **env: str) -> Listener:
        listener = Listener(self.tmp_path / f"pg_listener-{len(self.started)}.log", **env)
        self.started.append(listener)
        conn = psycopg2.connect(self.database_url)
        conn.autocommit = True
        try:
            wait_until(lambda: listener.backend(conn) is not None, timeout=30,
                       message=f"pg_listener {listener.pid} to connect", interval=0.05)
        finally:
            conn.close()
        return listener

    def __exit__(self, *exc) -> None:
        for listener in self.started:
            listener.stop()
        supervisorctl("start", "pg_listener")
