"""8. No commit waits for the periodic poll: the slowest commit-to-DEL under 4 concurrent writers with
random 0-4 ms gaps (trickles, bursts and everything between), in both capture modes.

Every event carries the earliest commit it covers (committed_at); that commit is the slowest of the
event's, so the largest (DEL - committed_at) over the events is the largest of all commits. The DEL of
an event is the first DEL of its key after pg_listener handed the event to Kafka (published_at); a
marker under each key, set again after each DEL, makes every DEL visible to keyspace notifications. A commit that waited for
the poll would show as about OUTBOX_POLL_SECONDS.
"""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

from bench.common import Figure, Sizes, percentile, pg_conn, settings
from bench.kafka_tap import KafkaTap
from bench.keyspace import DelWatch
from bench.modes import MODES, capture_mode
from bench.rows import bench_rows
from citycache.read.cities import key as cache_key

WRITERS, MAX_GAP_S = 4, 0.004


def writer(row_ids, stop: threading.Event, count: list) -> None:
    rng = random.Random()
    with pg_conn(application_name="bench-no-poll") as conn, conn.cursor() as cur:
        while not stop.is_set():
            row_id, _ = rng.choice(row_ids)
            cur.execute("UPDATE city SET population = population + 1 WHERE id = %s", (row_id,))
            count.append(1)
            time.sleep(rng.uniform(0, MAX_GAP_S))


def measure(seconds: float) -> dict:
    with bench_rows() as rows:
        row_ids = list(rows.items())
        watch, tap = DelWatch("QZ*", rearm=True).start(), KafkaTap().start()
        time.sleep(1.0)
        for _, code in row_ids:
            watch.redis.set(cache_key(code), b"bench marker", ex=60)
        started = time.time()
        stop, counts = threading.Event(), [[] for _ in range(WRITERS)]
        threads = [threading.Thread(target=writer, args=(row_ids, stop, c)) for c in counts]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        time.sleep(1.5)
        watch.stop()
        tap.stop()
    dels = defaultdict(list)
    for t, code in watch.dels:
        dels[code].append(t)
    to_publish, to_kafka, to_del = [], [], []
    for t_seen, _, _, event in tap.seen:
        if event.committed_at is None or event.committed_at < started:
            continue
        to_kafka.append(t_seen - event.committed_at)
        if event.published_at is not None:  # both stamps from the pipeline itself, no bench thread between
            to_publish.append(event.published_at - event.committed_at)
        t_del = next((t for t in sorted(dels[event.code]) if t >= (event.published_at or t_seen)), None)
        if t_del is not None:
            to_del.append(t_del - event.committed_at)
    ms = lambda values, p: round(percentile(values, p) * 1000, 1) if values else None  # noqa: E731
    return {"commits": sum(len(c) for c in counts), "events": len(to_kafka),
            "max_ms": round(max(to_del) * 1000, 1) if to_del else None, "p99_ms": ms(to_del, 99),
            "p50_ms": ms(to_del, 50), "max_to_kafka_ms": round(max(to_kafka) * 1000, 1) if to_kafka else None,
            "max_to_publish_ms": round(max(to_publish) * 1000, 1) if to_publish else None,
            "p50_to_publish_ms": ms(to_publish, 50)}


def bench(sizes: Sizes) -> Figure:
    seconds = max(3.0, sizes.rate_seconds * 2 / 3)
    results = {}
    for mode in MODES:
        with capture_mode(mode):
            results[mode] = measure(seconds)
    poll_ms = settings().outbox_poll_seconds * 1000
    worst = max((r["max_ms"] or float("inf")) for r in results.values())
    notify, logical = results["notify"], results["logical"]
    return Figure(
        8, "slowest commit-to-DEL, 4 writers with 0-4 ms gaps: notify mode", notify["max_ms"], "ms",
        f"< the {poll_ms:g} ms poll, both modes", worst < poll_ms,
        details={"seconds": seconds, "writers": WRITERS, "modes": results},
        note=(f"notify: {notify['commits']} commits, p50 {notify['p50_ms']}, p99 {notify['p99_ms']} ms, slowest "
              f"commit->publish {notify['max_to_publish_ms']} ms; logical: max {logical['max_ms']}, p50 "
              f"{logical['p50_ms']}, p99 {logical['p99_ms']} ms, slowest commit->publish "
              f"{logical['max_to_publish_ms']} ms ({logical['commits']} commits)"))
