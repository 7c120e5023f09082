"""3. Sustained invalidation rate: concurrent single-row commits as fast as Postgres takes them,
against the rate at which the pipeline applies them (DEL acknowledged), and the backlog over time.

A commit counts as applied once the cleaners' group has committed the offset of an event of its
code whose last commit time (the newest commit it covers) is at least the commit's own commit time
(Postgres' commit timestamp of the writer's xid). Sampled every SAMPLE_S: commits, applied, and rows
waiting in the outbox. Run in notify mode (the figure), then in logical mode.
"""
from __future__ import annotations

import bisect
import random
import threading
import time
from collections import defaultdict

from bench.common import Figure, Sizes, pg_conn, settings
from bench.kafka_tap import KafkaTap
from bench.modes import MODES, capture_mode
from bench.rows import bench_rows
from citycache.runtime.clients import kafka_admin
from citycache.write.dbnames import OUTBOX

SAMPLE_S = 0.2
TOLERANCE = 0.97  # "at least 1.0" within the noise of two rates sampled on a shared machine
UPDATE = ("UPDATE city SET population = population + 1 WHERE id = %s;"
          " SELECT pg_current_xact_id()::text")  # its commit time is looked up after the run
DRAIN_TARGET_S = 1.0


def writer(row_ids, stop: threading.Event, out: list) -> None:
    rng = random.Random()
    with pg_conn(application_name="bench-rate") as conn, conn.cursor() as cur:
        while not stop.is_set():
            row_id, code = rng.choice(row_ids)
            cur.execute(UPDATE, (row_id,))
            out.append((time.time(), int(cur.fetchone()[0]), code))


def sampler(stop: threading.Event, samples: list) -> None:
    group = settings().kafka_consumer_group
    admin = kafka_admin(settings(), timeout_ms=5000)
    try:
        with pg_conn(application_name="bench-rate-sampler") as conn, conn.cursor() as cur:
            while not stop.is_set():
                cur.execute(f"SELECT count(*) FROM {OUTBOX}")
                backlog = cur.fetchone()[0]
                offsets = {tp.partition: meta.offset for tp, meta in
                           admin.list_group_offsets(group)[group].items() if tp.topic == "city_updates"}
                samples.append({"t": time.time(), "outbox": backlog, "offsets": offsets})
                stop.wait(SAMPLE_S)
    finally:
        admin.close()


def bench(sizes: Sizes) -> Figure:
    results = {}
    for mode in MODES:
        with capture_mode(mode):
            results[mode] = measure(sizes)
    notify, logical = results["notify"], results["logical"]
    notify.met = bool(notify.met) and bool(logical.met)
    notify.note = f"notify: {notify.note}. logical: {logical.value}x, {logical.note}"
    notify.details = {"notify": notify.details, "logical": logical.details}
    notify.target += " (both modes)"
    return notify


def measure(sizes: Sizes) -> Figure:
    with bench_rows() as rows:
        row_ids = list(rows.items())
        tap = KafkaTap().start()
        time.sleep(1.0)
        commits_per_writer = [[] for _ in range(sizes.rate_writers)]
        samples: list = []
        stop_writers, stop_sampler = threading.Event(), threading.Event()
        sampling = threading.Thread(target=sampler, args=(stop_sampler, samples))
        threads = [threading.Thread(target=writer, args=(row_ids, stop_writers, out))
                   for out in commits_per_writer]
        sampling.start()
        t_start = time.time()
        for t in threads:
            t.start()
        time.sleep(sizes.rate_seconds)
        stop_writers.set()
        for t in threads:
            t.join()
        t_end = time.time()
        commits = commit_times(sorted(c for out in commits_per_writer for c in out))
        # Keep sampling until everything committed is applied (or give up after 30 s).
        deadline = time.time() + 30
        while time.time() < deadline and (
                not samples or applied_at(samples[-1]["offsets"], tap.seen, commits) < len(commits)):
            time.sleep(SAMPLE_S)
        stop_sampler.set()
        sampling.join()
        tap.stop()
    return summarize(sizes, commits, samples, tap.seen, t_start, t_end)


def commit_times(commits):
    """(t_returned, xid, code) -> (t_returned, commit timestamp, code), from Postgres' commit timestamps."""
    with pg_conn(application_name="bench-rate") as conn, conn.cursor() as cur:
        cur.execute("SELECT x, extract(epoch FROM pg_xact_commit_timestamp(x::text::xid8::xid))::float8"
                    " FROM unnest(%s::bigint[]) AS x", ([xid for _, xid, _ in commits],))
        stamps = dict(cur.fetchall())
    return [(t, stamps[xid], code) for t, xid, code in commits]


def applied_at(offsets: dict, seen, commits) -> int:
    """How many commits the cleaners had applied when their group's offsets were `offsets`."""
    newest = {}
    for _, partition, offset, event in seen:
        if offset < offsets.get(partition, -1) and event.last_committed_at is not None:
            newest[event.code] = max(newest.get(event.code, 0.0), event.last_committed_at)
    stamps = defaultdict(list)
    for _, committed_at, code in commits:
        stamps[code].append(committed_at)
    # 1 us of slack: the two sides round Postgres' microseconds to a float differently.
    return sum(bisect.bisect_right(sorted(stamps[code]), newest.get(code, 0.0) + 1e-6) for code in stamps)


def summarize(sizes, commits, samples, seen, t_start, t_end) -> Figure:
    series = []
    commit_times = [c[0] for c in commits]
    for s in samples:
        series.append({"t": round(s["t"] - t_start, 2), "committed": bisect.bisect_right(commit_times, s["t"]),
                       "applied": applied_at(s["offsets"], seen, commits), "outbox": s["outbox"]})
    # Rates over the steady part of the load: from 20 % into it to its end.
    t_a = 0.2 * (t_end - t_start)
    t_b = t_end - t_start
    steady = [p for p in series if t_a <= p["t"] <= t_b]
    committed_rate = applied_rate = 0.0
    if len(steady) >= 2:
        span = steady[-1]["t"] - steady[0]["t"]
        committed_rate = (steady[-1]["committed"] - steady[0]["committed"]) / span
        applied_rate = (steady[-1]["applied"] - steady[0]["applied"]) / span
    drained = next((p["t"] for p in series if p["t"] >= t_b and p["applied"] >= len(commits)), None)
    lag = max((p["committed"] - p["applied"] for p in series if p["t"] <= t_b), default=0)
    ratio = applied_rate / committed_rate if committed_rate else 0.0
    drain_s = round(drained - t_b, 2) if drained is not None else None
    met = ratio >= TOLERANCE and drain_s is not None and drain_s <= DRAIN_TARGET_S
    return Figure(
        3, "sustained invalidation: applied/committed", round(ratio, 3), "x committed",
        f">= 1.0 (within {1 - TOLERANCE:.0%}), drained <= {DRAIN_TARGET_S:g} s after stop", met,
        details={"writers": sizes.rate_writers, "seconds": sizes.rate_seconds, "commits": len(commits),
                 "committed_per_s": round(committed_rate, 1), "applied_per_s": round(applied_rate, 1),
                 "max_lag_commits": lag, "max_outbox_rows": max((p["outbox"] for p in series), default=0),
                 "drain_after_stop_s": drain_s, "series": series},
        note=(f"{committed_rate:.0f} committed/s, {applied_rate:.0f} applied/s; max lag {lag} commits, "
              f"outbox max {max((p['outbox'] for p in series), default=0)} rows; drained "
              f"{drain_s} s after stop"))
