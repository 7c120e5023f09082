"""Commit to fresh answer, with the near cache off and on: what the Redis push adds (issue 11).

`python -m bench.freshness [--commits N]`, against the running stack (bin/bench starts it; this is not
one of the numbered figures). Two gunicorns of the project, like figure 1's, one with the near cache
off and one with it on. Each round warms both on one bench code, commits a single-row UPDATE, and
two threads poll one server each (keep-alive, back to back) until it answers the new population:
the time from just before the commit to that answer, for both servers after the same commit.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.common import ARTIFACTS, median, percentile, pg_conn
from bench.hit_throughput import APPS, Server
from bench.rows import bench_rows


def poll_until(session: requests.Session, url: str, needle: bytes, started: float, out: dict, name: str,
               timeout: float = 10.0) -> None:
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if needle in session.get(url, timeout=5).content:
            out[name] = time.perf_counter() - started
            return
    out[name] = None


def measure(commits: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-fresh-"))
    floor_file = tmp / "unused"
    servers = {name: Server(name, *APPS[name], floor_file, tmp) for name in ("near_off", "near_on")}
    results: dict[str, list[float]] = {name: [] for name in servers}
    missed = {name: 0 for name in servers}
    try:
        for server in servers.values():
            server.wait_up()
        sessions = {name: requests.Session() for name in servers}
        with bench_rows() as rows, pg_conn() as conn, conn.cursor() as cur:
            row_id, code = next(iter(rows.items()))
            time.sleep(1.0)  # let the bench rows' own invalidations pass
            for i in range(commits):
                population = 5_000_000 + i
                for name, server in servers.items():  # warm: a copy in Redis and in the near cache
                    for _ in range(3):
                        sessions[name].get(server.url(code), timeout=5)
                needle = b'"population":%d' % population
                out: dict[str, float | None] = {}
                started = time.perf_counter()
                cur.execute("UPDATE city SET population = %s WHERE id = %s", (population, row_id))
                threads = [threading.Thread(target=poll_until, args=(sessions[name], server.url(code), needle,
                                                                     started, out, name))
                           for name, server in servers.items()]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                for name, seconds in out.items():
                    if seconds is None:
                        missed[name] += 1
                    else:
                        results[name].append(seconds)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def stats(values: list[float]) -> dict:
        ms = [v * 1000 for v in values]
        return {"p50": round(median(ms), 2), "p90": round(percentile(ms, 90), 2),
                "p99": round(percentile(ms, 99), 2), "max": round(max(ms), 2)} if ms else {}

    return {"commits": commits, "near_off_ms": stats(results["near_off"]), "near_on_ms": stats(results["near_on"]),
            "missed": missed}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.freshness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=100)
    args = parser.parse_args()
    result = measure(args.commits)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "freshness.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
