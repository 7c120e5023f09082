"""1. Cache-hit throughput of GET /cities/<code> against a bare gunicorn+Flask floor (same settings).

wrk (a separate process, keep-alive) loads each server in turn; rounds alternate app and floor so
that drift from other load on the machine falls on both alike.
"""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import ROOT, Figure, Sizes, base_url, median, need, run, wait_for

CODE = "USA"  # the largest country: the biggest cached value, so the hit path is most visible
WRK_THREADS, WRK_CONNECTIONS = 2, 32
TARGET = 0.85


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, seconds: float) -> dict:
    out = run([need("wrk", "wrk"), f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{max(1, round(seconds))}s",
               "--latency", url], timeout=seconds + 60)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sockets.group(1) if sockets else ""}


def start_floor(body: bytes, log_path: Path) -> tuple[subprocess.Popen, str, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    (tmp / "body.json").write_bytes(body)
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    # The app's config file, so workers, threads, keep-alive and access logging are the same; only
    # the address and the control socket differ (the running app holds its own).
    proc = subprocess.Popen(
        [str(gunicorn), "--config", str(ROOT / "web" / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
         "--control-socket", str(tmp / "gunicorn.ctl"), "bench.floor_app:create_app()"],
        cwd=ROOT, env={**__import__("os").environ, "BENCH_FLOOR_FILE": str(tmp / "body.json")},
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/cities/{CODE}"

    def answers():
        if proc.poll() is not None:
            raise RuntimeError(f"the floor gunicorn exited; see {log_path}")
        try:
            return requests.get(url, timeout=2).content == body
        except requests.ConnectionError:
            return False

    wait_for(answers, 30, "the floor gunicorn")
    return proc, url, tmp


def bench(sizes: Sizes) -> Figure:
    url = f"{base_url()}/cities/{CODE}"
    requests.get(url, timeout=10)  # fill the cache
    hit = requests.get(url, timeout=10)
    if not hit.content.startswith(b'{"source":"cache"'):
        raise RuntimeError(f"expected a cache hit from {url}, got {hit.content[:60]!r}")
    log_path = ROOT / "artifacts" / "floor-gunicorn.log"
    log_path.parent.mkdir(exist_ok=True)
    floor, floor_url, tmp = start_floor(hit.content, log_path)
    app_runs, floor_runs = [], []
    try:
        wrk(url, 1), wrk(floor_url, 1)  # warm both up: connections, imports, caches
        for _ in range(sizes.hit_rounds):
            app_runs.append(wrk(url, sizes.hit_seconds))
            floor_runs.append(wrk(floor_url, sizes.hit_seconds))
            time.sleep(0.5)
    finally:
        floor.terminate()
        try:
            floor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            floor.kill()
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    app_rps = median([r["rps"] for r in app_runs])
    floor_rps = median([r["rps"] for r in floor_runs])
    ratio = app_rps / floor_rps
    return Figure(
        1, "cache-hit throughput vs floor", round(ratio, 3), "x floor", f">= {TARGET}", ratio >= TARGET,
        details={"app_rps": app_rps, "floor_rps": floor_rps, "code": CODE, "bytes": len(hit.content),
                 "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{sizes.hit_seconds:g}s x{sizes.hit_rounds}",
                 "app_runs": app_runs, "floor_runs": floor_runs},
        note=f"{app_rps:.0f} vs {floor_rps:.0f} req/s")
