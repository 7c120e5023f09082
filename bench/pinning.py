"""The writers on one core, everything else on the other: how a database server with a core to spare
sees the capture (figure 6's second shape).

Postgres' postmaster goes to the writers' core, so the backends it forks from now on (pgbench's) start
there; every other thread on the machine (Postgres' own processes already running, the walsender, the
listener, the cleaner, Kafka, Redis, gunicorn, this benchmark) goes to the other core. pgbench itself
runs under `taskset -c <writers' core>`. Affinities are put back afterwards.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bench.common import pg_conn

WRITERS_CPU, OTHERS_CPU = 0, 1


def postmaster_pid() -> int:
    with pg_conn(application_name="bench-pinning") as conn, conn.cursor() as cur:
        cur.execute("SHOW data_directory")
        data_directory = cur.fetchone()[0]
    return int(Path(data_directory, "postmaster.pid").read_text().split()[0])


def _threads() -> list[int]:
    tids = []
    for task_dir in Path("/proc").glob("[0-9]*/task/[0-9]*"):
        tids.append(int(task_dir.name))
    return tids


def available() -> bool:
    return len(os.sched_getaffinity(0)) >= 2 and hasattr(os, "sched_setaffinity")


@contextlib.contextmanager
def writers_pinned():
    """Yields the taskset prefix for the writers' command (["taskset", "-c", "0"])."""
    postmaster = postmaster_pid()
    before: dict[int, set[int]] = {}
    for tid in _threads():
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, {WRITERS_CPU} if tid == postmaster else {OTHERS_CPU})
        except OSError:  # gone already, or a kernel thread bound to its CPU
            before.pop(tid, None)
    try:
        yield ["taskset", "-c", str(WRITERS_CPU)]
    finally:
        for tid, cpus in before.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)
