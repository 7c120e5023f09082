"""Run part of a benchmark with a pg_listener of the benchmark's own: in the other capture mode, or with
rules for the benchmark's own tables beside the stack's.

The stack runs notify mode under supervisord with the shipped rules. Here the supervised listener is
stopped and one of our own runs with CAPTURE_MODE=`mode` and INVALIDATION_RULES naming a file of the
stack's rules plus `extra_rules` ([[rule]] texts: copies of city that capture). In logical mode the
listener publishes every rule's table itself (each with its replica identity, citycache/write/replication.py).
Afterwards the supervised one starts again; in notify mode it turns the triggers back on and drops the slot.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, pg_conn, settings, supervisorctl, wait_for
from citycache.pipeline import slot_passed, wal_barrier
from citycache.write import replication

MODES = ("notify", "logical")


def _streaming(pid: int) -> bool:
    with pg_conn(application_name="bench-modes") as conn, conn.cursor() as cur:
        cur.execute("SELECT a.application_name FROM pg_replication_slots s JOIN pg_stat_activity a"
                    " ON a.pid = s.active_pid WHERE s.slot_name = %s", (settings().replication_slot,))
        row = cur.fetchone()
        return bool(row and row[0] == f"pg_listener {pid} wal")


def _slot_gone() -> bool:
    with pg_conn(application_name="bench-modes") as conn:
        return replication.retained_wal_bytes(conn, settings().replication_slot) is None


def _ends_with_us() -> None:
    """In the child: SIGTERM when the benchmark dies, so a killed run leaves no second listener
    fighting the stack's over the triggers."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _ready(log: Path, listener: subprocess.Popen, mode: str) -> bool:
    if listener.poll() is not None:
        raise RuntimeError(f"the benchmark's pg_listener exited {listener.returncode}: {log.read_text()[-600:]}")
    if mode == "logical":
        return _streaming(listener.pid)
    return '"msg": "listening"' in log.read_text(errors="replace")


@contextlib.contextmanager
def capture_mode(mode: str, extra_rules: list[str] = ()):
    if mode == "notify" and not extra_rules:
        yield
        return
    stack_rules = Path(settings().invalidation_rules)
    stack_rules = stack_rules if stack_rules.is_absolute() else ROOT / stack_rules
    supervisorctl("stop", "pg_listener")
    with tempfile.TemporaryDirectory(prefix="bench-modes-") as tmp:
        rules = Path(tmp) / "invalidation.toml"
        rules.write_text(stack_rules.read_text() + "\n" + "\n".join(extra_rules))
        log = Path(tmp) / "pg_listener.log"
        with open(log, "wb") as out:
            listener = subprocess.Popen([sys.executable, "-m", "workers.pg_listener"], cwd=ROOT,
                                        env={**os.environ, "CAPTURE_MODE": mode, "INVALIDATION_RULES": str(rules)},
                                        stdout=out, stderr=subprocess.STDOUT, preexec_fn=_ends_with_us)
        try:
            wait_for(lambda: _ready(log, listener, mode), 60, f"the benchmark's {mode} listener to start")
            yield
        finally:
            listener.terminate()
            listener.wait(timeout=30)
            supervisorctl("start", "pg_listener")
            if mode == "logical":
                wait_for(_slot_gone, 60, "the notify listener to take over again")


def time_logical_beside_none(conn, cur, tables: dict[str, str], timed, repeats: int,
                             times: dict[str, list[float]]) -> None:
    """Inside capture_mode("logical", ...): `timed(cur, table)` on the published copy and on the copy
    without capture beside it (times "logical" and "none_beside_logical"), `repeats` rounds after one
    that warms the caches. After each run the slot is awaited past it, so that one run's decoding does
    not overlap the next."""
    slot = settings().replication_slot
    for repeat in range(repeats + 1):
        for variant, key in (("logical", "logical"), ("none", "none_beside_logical")):
            elapsed = timed(cur, tables[variant])
            if repeat:
                times[key].append(elapsed)
            barrier = wal_barrier(conn, slot)
            wait_for(lambda: slot_passed(conn, slot, barrier), 120, "the slot to pass the UPDATE")
