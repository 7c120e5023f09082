"""1. Cache-hit throughput of GET /cities/<code>: the project against two baselines, in one run.

Four gunicorns with the app's own config file (workers, threads, keep-alive, access log to a file), started
here on ports of their own: the floor (the same bytes from memory, bench/floor_app.py), a bare Flask
app doing one Redis GET (bench/bare_app.py), and the project itself with its near cache off and on.
wrk (a separate process, keep-alive) loads each in turn; a round runs all four back to back, so
drift from other load on the machine falls on all alike, and each ratio is the median of the rounds'.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import ROOT, Figure, Sizes, free_port, median, need, run, wait_for

# A typical country (the walkthrough's, 5 KB cached) is the figure; the largest (USA, 300 KB) is
# reported beside it, since there the value's trip from Redis costs the most.
CODE, LARGEST = "BGR", "USA"
WRK_THREADS, WRK_CONNECTIONS = 2, 32
TARGET = 0.85          # BGR, near cache on, x floor
TARGET_OFF = 0.9       # BGR, near cache off, x the bare Flask+Redis app
TARGET_LARGEST = 0.7   # USA, near cache on, x floor
APPS = {  # name -> (WSGI app, extra environment)
    "floor": ("bench.floor_app:create_app()", {}),
    "bare": ("bench.bare_app:create_app()", {}),
    "near_off": ("web:create_app()", {"NEAR_CACHE_ENABLED": "false"}),
    "near_on": ("web:create_app()", {"NEAR_CACHE_ENABLED": "true"}),
}


def wrk(url: str, seconds: float) -> dict:
    out = run([need("wrk", "wrk"), f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{max(1, round(seconds))}s",
               "--latency", url], timeout=seconds + 60)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sockets.group(1) if sockets else ""}


class Server:
    """One gunicorn with the app's config, on its own port and control socket."""

    def __init__(self, name: str, wsgi: str, env: dict, floor_file: Path, tmp: Path, port: int | None = None):
        self.name, self.port = name, port or free_port()
        self.log_path = ROOT / "artifacts" / f"hit-{name}-gunicorn.log"
        self.log_path.parent.mkdir(exist_ok=True)
        log_dir = tmp / f"log-{name}"  # its access log, not in the stack's LOG_DIR
        log_dir.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "--config", str(ROOT / "web" / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{self.port}", "--control-socket", str(tmp / f"{name}.ctl"), wsgi],
            cwd=ROOT, env={**os.environ, **env, "BENCH_FLOOR_FILE": str(floor_file), "LOG_DIR": str(log_dir)},
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def url(self, code: str) -> str:
        return f"http://127.0.0.1:{self.port}/cities/{code}"

    def wait_up(self) -> None:
        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {self.name} gunicorn exited; see {self.log_path}")
            try:
                return requests.get(self.url(CODE), timeout=5).status_code
            except requests.ConnectionError:
                return False

        wait_for(answers, 30, f"the {self.name} gunicorn to answer")

    def wait_serving(self, code: str, body: bytes) -> None:
        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {self.name} gunicorn exited; see {self.log_path}")
            try:
                # Twice: the first may be the fill of the near cache (or of Redis).
                requests.get(self.url(code), timeout=5)
                return requests.get(self.url(code), timeout=5).content == body
            except requests.ConnectionError:
                return False

        wait_for(answers, 30, f"the {self.name} gunicorn to answer {code} with the cached body")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def hit_body(code: str, url: str) -> bytes:
    requests.get(url, timeout=10)  # fill Redis
    hit = requests.get(url, timeout=10)
    if not hit.content.startswith(b'{"source":"cache"'):
        raise RuntimeError(f"expected a cache hit from {url}, got {hit.content[:60]!r}")
    return hit.content


def measure(code: str, sizes: Sizes, servers: dict[str, Server], floor_file: Path) -> dict:
    servers["near_off"].wait_up()
    body = hit_body(code, servers["near_off"].url(code))
    floor_file.write_bytes(body)
    # The floor reads its file when a worker starts: restart it for this code's bytes.
    servers["floor"].stop()
    servers["floor"] = Server("floor", *APPS["floor"], floor_file, floor_file.parent)
    for server in servers.values():
        server.wait_serving(code, body)
    runs: dict[str, list[dict]] = {name: [] for name in servers}
    for server in servers.values():
        wrk(server.url(code), 1)  # warm up: connections, imports, the near cache
    for _ in range(sizes.hit_rounds):
        for name, server in servers.items():
            runs[name].append(wrk(server.url(code), sizes.hit_seconds))
        time.sleep(0.5)

    def ratio(a: str, b: str) -> float:
        # Each round's runs are back to back, so their ratio shares the machine's load of that moment;
        # the median over rounds damps a round that another stack disturbed.
        return round(median([x["rps"] / y["rps"] for x, y in zip(runs[a], runs[b])]), 3)

    rps = {name: median([r["rps"] for r in rs]) for name, rs in runs.items()}
    return {"code": code, "bytes": len(body), "rps": rps, "runs": runs, "floor_rps": rps["floor"],
            "on_vs_floor": ratio("near_on", "floor"), "off_vs_floor": ratio("near_off", "floor"),
            "off_vs_bare": ratio("near_off", "bare"), "bare_vs_floor": ratio("bare", "floor"),
            "on_vs_bare": ratio("near_on", "bare")}


def bench(sizes: Sizes) -> Figure:
    tmp = Path(tempfile.mkdtemp(prefix="bench-hit-"))
    floor_file = tmp / "body.json"
    floor_file.write_bytes(b"{}")
    (ROOT / "artifacts").mkdir(exist_ok=True)
    servers = {name: Server(name, wsgi, env, floor_file, tmp) for name, (wsgi, env) in APPS.items()}
    try:
        typical = measure(CODE, sizes, servers, floor_file)
        largest = measure(LARGEST, sizes, servers, floor_file)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    met = (typical["on_vs_floor"] >= TARGET and typical["off_vs_bare"] >= TARGET_OFF
           and largest["on_vs_floor"] >= TARGET_LARGEST)

    def line(m: dict) -> str:
        return (f"{m['code']} ({m['bytes'] // 1000} KB): near on {m['on_vs_floor']:.2f}x floor, "
                f"off {m['off_vs_floor']:.2f}x floor = {m['off_vs_bare']:.2f}x bare, "
                f"bare {m['bare_vs_floor']:.2f}x floor (req/s floor {m['rps']['floor']:.0f}, "
                f"bare {m['rps']['bare']:.0f}, off {m['rps']['near_off']:.0f}, on {m['rps']['near_on']:.0f})")

    return Figure(
        1, "cache-hit throughput vs floor (near cache on)", typical["on_vs_floor"], "x floor",
        f"BGR on >= {TARGET} x floor, off >= {TARGET_OFF} x bare; USA on >= {TARGET_LARGEST} x floor", met,
        details={**typical, "largest": largest,
                 "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{sizes.hit_seconds:g}s x{sizes.hit_rounds}"},
        note=f"{line(typical)}; {line(largest)}")
