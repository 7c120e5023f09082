"""1. Cache-hit throughput of GET /cities/<code> against a bare gunicorn+Flask floor (same settings).

wrk (a separate process, keep-alive) loads each server in turn; rounds alternate app and floor so
that drift from other load on the machine falls on both alike.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import ROOT, Figure, Sizes, base_url, median, need, run, wait_for

# A typical country (the walkthrough's, 5 KB cached) is the figure; the largest (USA, 300 KB) is
# reported beside it, since there the value's second trip (Redis -> worker) costs the most.
CODE, LARGEST = "BGR", "USA"
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
        cwd=ROOT, env={**os.environ, "BENCH_FLOOR_FILE": str(tmp / "body.json")},
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


def measure(code: str, sizes: Sizes) -> dict:
    url = f"{base_url()}/cities/{code}"
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
    # Each round's app and floor runs are back to back, so their ratio shares the machine's load of
    # that moment; the median over rounds damps a round that another stack disturbed.
    ratio = median([a["rps"] / f["rps"] for a, f in zip(app_runs, floor_runs)])
    return {"code": code, "bytes": len(hit.content), "ratio": round(ratio, 3), "app_rps": app_rps,
            "floor_rps": floor_rps, "app_runs": app_runs, "floor_runs": floor_runs}


def bench(sizes: Sizes) -> Figure:
    typical, largest = measure(CODE, sizes), measure(LARGEST, sizes)
    ratio = typical["ratio"]
    return Figure(
        1, "cache-hit throughput vs floor", ratio, "x floor", f">= {TARGET}", ratio >= TARGET,
        details={**typical, "largest": largest,
                 "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{sizes.hit_seconds:g}s x{sizes.hit_rounds}"},
        note=(f"{CODE} ({typical['bytes'] // 1000} KB): {typical['app_rps']:.0f} vs "
              f"{typical['floor_rps']:.0f} req/s; "
              f"{LARGEST} ({largest['bytes'] // 1000} KB): {largest['ratio']:.2f}x "
              f"({largest['app_rps']:.0f} vs {largest['floor_rps']:.0f})"))
