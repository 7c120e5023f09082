"""Logical mode against a Postgres without wal_level=logical: pg_listener stops with one line saying
how to fix it. A throwaway Postgres of the test's own (wal_level=replica) on a port of its own."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import ROOT

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PORT = 18001  # this stack's range for extra services


def as_postgres(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                          timeout=60, **kwargs)


@pytest.fixture
def replica_postgres():
    # Not under pytest's tmp dir: its parents are closed to the OS user postgres.
    base = Path(tempfile.mkdtemp(prefix="citycache-wal-replica-"))
    data, sock = base / "data", base / "sock"
    try:
        sock.mkdir()
        os.chmod(base, 0o755)
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        assert as_postgres(f"{PG_BIN}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust").returncode == 0
        started = as_postgres(f"{PG_BIN}/pg_ctl", "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                              f"-p {PORT} -k {sock} -c listen_addresses=localhost -c wal_level=replica", "start")
        assert started.returncode == 0, started.stderr
        yield f"postgresql://postgres@localhost:{PORT}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            as_postgres(f"{PG_BIN}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_logical_mode_without_logical_wal_stops_with_one_line_that_says_how_to_fix_it(replica_postgres):
    done = subprocess.run([sys.executable, "-m", "workers.pg_listener"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "CAPTURE_MODE": "logical", "DATABASE_URL": replica_postgres})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "wal_level=logical" in last and "ALTER SYSTEM SET wal_level = logical" in last and "restart" in last
