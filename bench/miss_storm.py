"""5. Miss storm: many concurrent requests for one key that is not cached.

Each round deletes the key, resets pg_stat_statements, releases all requests at once from a barrier,
then counts the city queries Postgres ran. Leases should make that exactly one per storm.
"""
from __future__ import annotations

import http.client
import re
import threading
import time

from bench.common import Figure, Sizes, percentile, pg_conn, program_stopped, settings
from citycache.read.cities import key as cache_key
from citycache.write.deletes import invalidate
from citycache.read.cities import CITIES_SQL
from citycache.runtime.clients import redis_client

CODE = "USA"  # the most cities: the slowest fill, the widest window for a herd
TARGET_QUERIES = 1
SOURCE_RE = re.compile(rb'\{"source":"(\w+)"')


def one_request(port: int, barrier: threading.Barrier, results: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        barrier.wait()
        started = time.perf_counter()
        conn.request("GET", f"/cities/{CODE}")
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        source = SOURCE_RE.match(body)
        results.append((response.status, elapsed, source.group(1).decode() if source else None))
    except Exception as exc:  # a refused or timed-out request is a result too
        results.append((type(exc).__name__, None, None))
    finally:
        conn.close()


def storm(count: int) -> list:
    results: list = []
    barrier = threading.Barrier(count)
    threads = [threading.Thread(target=one_request, args=(settings().http_port, barrier, results))
               for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def city_queries(cur) -> int:
    cur.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query = %s",
                (CITIES_SQL.replace("%s", "$1"),))
    return int(cur.fetchone()[0])


def bench(sizes: Sizes) -> Figure:
    redis = redis_client(settings())
    rounds = []
    # The consistency sampler compares the refilled key at once, with a query of the same text: the figure
    # counts the API's.
    with pg_conn(application_name="bench-storm") as conn, conn.cursor() as cur, \
            program_stopped("consistency_sampler"):
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for _ in range(sizes.storm_rounds):
            invalidate(redis, [cache_key(CODE)])
            cur.execute("SELECT pg_stat_statements_reset()")
            results = storm(sizes.storm_requests)
            time.sleep(0.2)
            rounds.append({"queries": city_queries(cur), "results": results})
    redis.close()
    latencies = [r[1] * 1000 for rnd in rounds for r in rnd["results"] if r[1] is not None]
    statuses = {}
    sources = {}
    for rnd in rounds:
        for status, _, source in rnd["results"]:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            sources[str(source)] = sources.get(str(source), 0) + 1
    queries = [rnd["queries"] for rnd in rounds]
    worst = max(queries)
    p99 = percentile(latencies, 99) if latencies else None
    return Figure(
        5, "miss storm: DB queries per storm (worst round)", worst, "queries",
        f"== {TARGET_QUERIES}; p99 reported",
        worst == TARGET_QUERIES and statuses.get("200") == sum(statuses.values()),
        details={"code": CODE, "requests_per_storm": sizes.storm_requests, "rounds": sizes.storm_rounds,
                 "queries_per_round": queries, "statuses": statuses, "sources": sources,
                 "latency_ms": {"p50": round(percentile(latencies, 50), 1) if latencies else None,
                                "p99": round(p99, 1) if p99 else None,
                                "max": round(max(latencies), 1) if latencies else None}},
        note=f"{sizes.storm_requests} concurrent x {sizes.storm_rounds}: queries {queries}, "
             f"p99 {p99:.0f} ms" if p99 else "no successful request")
