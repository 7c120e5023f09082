"""Run part of a benchmark with the stack's pg_listener in the other capture mode.

The stack runs notify mode under supervisord. For logical mode the supervised listener is stopped and
one of our own runs with CAPTURE_MODE=logical (tables named in `publish` are added to its publication,
each with its unique (countrycode, id) index as the replica identity, like city's); afterwards the supervised one starts again, turns the
triggers back on and drops the slot.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from bench.common import ROOT, pg_conn, settings, wait_for
from citycache.write import replication

MODES = ("notify", "logical")


def _supervisorctl(*args: str) -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "supervisorctl")
    return subprocess.run([exe, "-c", str(ROOT / "supervisord.conf"), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT).stdout


def _streaming(pid: int) -> bool:
    with pg_conn(application_name="bench-modes") as conn, conn.cursor() as cur:
        cur.execute("SELECT a.application_name FROM pg_replication_slots s JOIN pg_stat_activity a"
                    " ON a.pid = s.active_pid WHERE s.slot_name = %s", (settings().replication_slot,))
        row = cur.fetchone()
        return bool(row and row[0] == f"pg_listener {pid} wal")


def _slot_gone() -> bool:
    with pg_conn(application_name="bench-modes") as conn:
        return replication.retained_wal_bytes(conn, settings().replication_slot) is None


@contextlib.contextmanager
def capture_mode(mode: str, publish: tuple[str, ...] = ()):
    if mode == "notify":
        yield
        return
    _supervisorctl("stop", "pg_listener")
    listener = subprocess.Popen([sys.executable, "-m", "workers.pg_listener"], cwd=ROOT,
                                env={**os.environ, "CAPTURE_MODE": "logical"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _streaming(listener.pid), 60, "the logical listener to stream")
        with pg_conn(application_name="bench-modes") as conn, conn.cursor() as cur:
            for table in publish:
                cur.execute(f"ALTER TABLE {table} REPLICA IDENTITY USING INDEX {table}_countrycode_idx")
                cur.execute(f"ALTER PUBLICATION {replication.PUBLICATION} ADD TABLE {table} {replication.PUBLISHED_COLUMNS}")
        yield
    finally:
        with pg_conn(application_name="bench-modes") as conn, conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_publication_tables WHERE pubname = %s AND tablename = ANY(%s)",
                        (replication.PUBLICATION, list(publish)))
            for (table,) in cur.fetchall():
                cur.execute(f"ALTER PUBLICATION {replication.PUBLICATION} DROP TABLE {table}")
        listener.terminate()
        listener.wait(timeout=30)
        _supervisorctl("start", "pg_listener")
        wait_for(_slot_gone, 60, "the notify listener to take over again")
