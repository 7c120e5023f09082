"""11. A miss as deployed: its latency, and the Postgres sessions misses, probes and scrapes open.

Against the stack's API on HTTP_PORT: 200 sequential GET /cities/BGR, each after the key and its
lease were deleted (a miss answered from the database; an answer still from the near cache, whose
push had not landed yet, is retried and not counted), on one keep-alive connection. Around them, and
around 20 GET /health and 20 GET /metrics, `pg_stat_database.sessions` says how many sessions
were opened: a pool that keeps its connections opens a few once, not one per request.
"""
from __future__ import annotations

import http.client
import time

from bench.common import Figure, Sizes, percentile, pg_conn, settings, wait_for
from citycache.read.cities import key as cache_key
from citycache.runtime.clients import redis_client
from citycache.write.deletes import invalidate

CODE = "BGR"
MISSES, PROBES = 200, 20
TARGET_P50_MS = 3.0


def pool_size() -> int:
    """The most Postgres connections the API's processes keep: each holds up to its pool's size."""
    from web.resources import pool_size as per_process

    return settings().web_workers * per_process(settings())


def sessions_opened(conn, burst) -> int:
    """Sessions opened in this database while `burst()` ran, ours excluded.

    A backend counts its session in pg_stat_database when it first flushes its statistics: at once on
    exit, within a second while it stays open. So the count is awaited until it covers at least the
    sessions that started during the burst and are still open."""
    with conn.cursor() as cur:
        def read() -> tuple[int, int]:
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            total = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND backend_start >= %s AND pid <> pg_backend_pid()", (started,))
            return total, cur.fetchone()[0]

        cur.execute("SELECT now()")  # autocommit: the time the burst starts, on the server's clock
        (started,) = cur.fetchone()
        before, _ = read()
        burst()

        def settled():
            total, open_now = read()
            return total - before >= open_now and (total - before,)

        (opened,) = wait_for(settled, 10, "pg_stat_database to count the sessions still open")
    return opened


class Client:
    """One keep-alive HTTP connection to the API."""

    def __init__(self) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", settings().http_port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def misses(client: Client, count: int, latencies: list[float]) -> None:
    """`count` GET /cities/BGR answered from the database; each one's time in ms into `latencies`."""
    redis = redis_client(settings())
    try:
        while len(latencies) < count:
            invalidate(redis, [cache_key(CODE)])
            started = time.perf_counter()
            status, body = client.get(f"/cities/{CODE}")
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"GET /cities/{CODE}: {status} {body[:200]!r}")
            if body.startswith(b'{"source":"db"'):
                latencies.append(elapsed)
    finally:
        redis.close()


def probes(client: Client, path: str, count: int) -> None:
    for _ in range(count):
        status, body = client.get(path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")


def bench(sizes: Sizes) -> Figure:
    client, latencies = Client(), []
    try:
        client.get(f"/cities/{CODE}")  # the connection made; no session counted for it
        with pg_conn(application_name="bench-misses") as conn:
            opened = {
                f"{MISSES} misses": sessions_opened(conn, lambda: misses(client, MISSES, latencies)),
                f"{PROBES} /health": sessions_opened(conn, lambda: probes(client, "/health", PROBES)),
                f"{PROBES} /metrics": sessions_opened(conn, lambda: probes(client, "/metrics", PROBES)),
            }
    finally:
        client.close()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    most = pool_size()
    met = p50 <= TARGET_P50_MS and all(n <= most for n in opened.values())
    shown = ", ".join(f"{what}: {n}" for what, n in opened.items())
    return Figure(
        11, f"miss latency of {CODE} as deployed, p50", round(p50, 2), "ms",
        f"p50 <= {TARGET_P50_MS:g} ms; sessions opened <= the pools' size ({most})", met,
        details={"code": CODE, "misses": MISSES, "latency_ms": {"p50": round(p50, 2), "p99": round(p99, 2),
                 "max": round(max(latencies), 2)}, "sessions_opened": opened, "pool_size": most},
        note=f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; Postgres sessions opened: {shown} (pools hold {most})")
