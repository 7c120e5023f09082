"""What every benchmark shares: the settings, connections, percentiles and the result record."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg2

from citycache.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
# User-assigned ISO 3166 codes (QZA..QZZ) owned by the benchmarks; the tests use QQA..QQE.
BENCH_CODES = [f"QZ{chr(c)}" for c in range(ord("A"), ord("Z") + 1)]


@dataclass
class Figure:
    """One line of the table: a value, its unit, the target beside it, and whether it is met."""
    number: int
    name: str
    value: float | None
    unit: str
    target: str
    met: bool | None
    details: dict = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is; --quick shrinks every one for a smoke run."""
    hit_seconds: float = 5.0
    hit_rounds: int = 5
    commits: int = 1000
    commit_interval_s: float = 0.02
    rate_seconds: float = 15.0
    rate_writers: int = 8
    bulk_rows: int = 100_000
    bulk_repeats: int = 5
    storm_requests: int = 200
    storm_rounds: int = 5
    write_seconds: float = 6.0
    write_rounds: int = 5  # the none baseline alone moves ~10 % from run to run: a true median
    stream_bytes: int = 1 << 30
    stream_rounds: int = 3

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(hit_seconds=2.0, hit_rounds=1, commits=100, rate_seconds=3.0, bulk_rows=10_000,
                   bulk_repeats=2, storm_rounds=2, write_seconds=2.0, write_rounds=1,
                   stream_bytes=10 << 20, stream_rounds=1)


def settings():
    return get_settings()


def pg(autocommit: bool = True, application_name: str = "bench"):
    conn = psycopg2.connect(settings().database_url, application_name=application_name)
    conn.autocommit = autocommit
    return conn


@contextlib.contextmanager
def pg_conn(**kwargs):
    conn = pg(**kwargs)
    try:
        yield conn
    finally:
        conn.close()


def base_url() -> str:
    return f"http://127.0.0.1:{settings().http_port}"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return percentile(values, 50)


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise RuntimeError(f"{tool} is not installed: apt-get install {package} (bin/bench does it)")
    return path


def run(cmd: list[str], timeout: float, env: dict | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for pid {pid}")


def cpu_ticks(pid: int) -> int:
    """user + system clock ticks the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def supervisorctl(*args: str) -> str:
    """supervisorctl of the project's supervisord (the venv's, beside this python); its output."""
    exe = Path(sys.executable).parent / "supervisorctl"
    return subprocess.run([str(exe), "-c", str(ROOT / "supervisord.conf"), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT).stdout


def program(name: str, running: bool) -> None:
    """Start or stop one of the stack's supervised programs; returns once supervisord says it is so."""
    supervisorctl("start" if running else "stop", name)
    state = "RUNNING" if running else "STOPPED"
    wait_for(lambda: state in supervisorctl("status", name), 30, f"{name} {state}")


@contextlib.contextmanager
def program_stopped(name: str):
    program(name, False)
    try:
        yield
    finally:
        program(name, True)


def web_master_pid() -> int:
    """gunicorn's master pid, from the project's supervisord."""
    out = supervisorctl("pid", "web").strip()
    if not out.isdigit() or out == "0":
        raise RuntimeError(f"web is not running under supervisord (supervisorctl pid web: {out!r})")
    return int(out)


_handed_out: set[int] = set()


def free_port(variable: str = "BENCH_PORTS") -> int:
    """A free port, from the range in `variable` ("18100-18199") when set (stacks sharing a machine keep
    apart), else one the OS picks. Each one once per run: servers started together bind theirs only later."""
    low, _, high = os.environ.get(variable, "").partition("-")
    candidates = range(int(low), int(high or low) + 1) if low else [0] * 20
    for candidate in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port ({variable}={os.environ.get(variable)!r})")
