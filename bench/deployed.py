"""10. Cache hits as deployed: the API that supervisord runs (as bin/run and the VM install start it)
against a floor that logs nothing.

Figure 1 starts its own gunicorns, each with the app's config; this one loads the stack's own API on
HTTP_PORT, supervisord and its log handling included, and compares it with a bare Flask route
returning the same bytes (bench/floor_app.py) under a plain gunicorn gthread: the same workers,
threads and keep-alive, no config file, so no access log. wrk -t2 -c32 on BGR, the two back to back
in each round; the figure is the median of the rounds' ratios. The CPU each process used during the
deployed runs says where the rest went.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import ARTIFACTS, ROOT, Figure, Sizes, base_url, children, cpu_ticks, free_port, median, settings
from bench.hit_throughput import CODE, Server, wrk

TARGET = 0.7  # x the no-log floor, near cache on (the stack's default)


def supervisord_pid() -> int:
    with open(ROOT / ".run" / "supervisord.pid") as f:
        return int(f.read().split()[0])


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    found = [pid]
    for child in children(pid):
        found += process_tree(child)
    return found


def process_name(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    words = [Path(a.decode()).name for a in argv[:4] if a]
    name = next((w for w in words if w in ("supervisord", "gunicorn", "tail", "tee")), None)
    if name is None and "-m" in words:
        name = words[words.index("-m") + 1]
    return name or words[0]


class Floor(Server):
    """The no-log floor: gunicorn's own defaults (no access log) with the API's worker shape."""

    def __init__(self, body: bytes, tmp: Path) -> None:
        s = settings()
        (tmp / "body.json").write_bytes(body)
        self.name, self.port = "no-log floor", free_port()
        self.log_path = ARTIFACTS / "deployed-floor-gunicorn.log"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "--worker-class", "gthread",
             "--workers", str(s.web_workers), "--threads", str(s.web_threads), "--keep-alive", "5",
             "--bind", f"127.0.0.1:{self.port}", "--control-socket", str(tmp / "floor.ctl"),
             "bench.floor_app:create_app()"],
            cwd=ROOT, env={**os.environ, "BENCH_FLOOR_FILE": str(tmp / "body.json")},
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_serving(CODE, body)


def cpu_by_process(run) -> tuple[dict, dict]:
    """`run()`'s result and the cores each of supervisord's processes used meanwhile, by name."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = process_tree(supervisord_pid())
    before, started = {pid: cpu_ticks(pid) for pid in pids}, time.monotonic()
    result = run()
    elapsed = time.monotonic() - started
    cores: dict[str, float] = {}
    for pid in pids:
        try:
            used = (cpu_ticks(pid) - before[pid]) / tick / elapsed
            name = process_name(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        cores[name] = round(cores.get(name, 0.0) + used, 3)
    return result, cores


def bench(sizes: Sizes) -> Figure:
    deployed = f"{base_url()}/cities/{CODE}"
    requests.get(deployed, timeout=10)  # fill Redis (and the near cache)
    body = requests.get(deployed, timeout=10).content
    if not body.startswith(b'{"source":"cache"'):
        raise RuntimeError(f"expected a cache hit from {deployed}, got {body[:60]!r}")
    ARTIFACTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-deployed-") as tmp:
        floor = Floor(body, Path(tmp))
        try:
            for url in (deployed, floor.url(CODE)):
                wrk(url, 1)  # warm up: connections, the near cache of every worker
            runs: dict[str, list] = {"deployed": [], "floor": []}
            cpu: list[dict] = []
            for _ in range(sizes.hit_rounds):
                result, cores = cpu_by_process(lambda: wrk(deployed, sizes.hit_seconds))
                runs["deployed"].append(result)
                cpu.append(cores)
                runs["floor"].append(wrk(floor.url(CODE), sizes.hit_seconds))
                time.sleep(0.5)
        finally:
            floor.stop()
    ratio = round(median([d["rps"] / f["rps"] for d, f in zip(runs["deployed"], runs["floor"])]), 3)
    rps = {name: median([r["rps"] for r in rs]) for name, rs in runs.items()}
    cores = {name: round(median([c.get(name, 0.0) for c in cpu]), 2) for name in cpu[0]}
    shown = ", ".join(f"{name} {value:.2f}" for name, value in sorted(cores.items(), key=lambda kv: -kv[1]))
    return Figure(
        10, "cache-hit throughput as deployed vs a no-log floor", ratio, "x floor", f">= {TARGET} x floor",
        ratio >= TARGET,
        details={"code": CODE, "bytes": len(body), "rps": rps, "runs": runs, "cores_during_deployed_runs": cpu,
                 "near_cache": settings().near_cache_enabled,
                 "workers": settings().web_workers, "threads": settings().web_threads},
        note=f"{CODE}: {rps['deployed']:.0f} vs {rps['floor']:.0f} req/s; cores while deployed ran: {shown}")
