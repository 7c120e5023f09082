"""2. Commit-to-DEL latency of single-row commits at a steady rate, with a breakdown per hop, in both
capture modes (notify mode is the figure; logical mode beside it); for both of city's keys
(`cities_<CODE>`, the figure, and `country_<CODE>` beside it), and the time from renaming a country's
capital to a fresh GET /countries/<code>.

Before each commit a marker is SET under the row's two keys; Redis keyspace notifications give the
time of each DEL. A Kafka consumer of our own gives the time each event became readable, and the event
carries committed_at (Postgres' commit timestamp) and published_at (pg_listener's send time):
  commit -> listener: published_at - committed_at  (NOTIFY, wake-up, outbox claim)
  listener -> Kafka:  seen - published_at          (produce, acks=all, readable to consumers)
  Kafka -> DEL:       del - seen                   (cleaner fetch, DEL acknowledged)
"""
from __future__ import annotations

import time
from collections import defaultdict

import requests

from bench.common import Figure, Sizes, base_url, pg_conn, percentile, wait_for
from bench.kafka_tap import KafkaTap
from bench.keyspace import DelWatch
from bench.modes import MODES, capture_mode
from bench.rows import bench_countries, bench_rows
from citycache.read.cities import CITIES
from citycache.read.countries import COUNTRIES

RENAME_INTERVAL_S = 0.1

P50_TARGET_MS, P99_TARGET_MS = 5.0, 15.0


def stats(values_s: list[float]) -> dict:
    if not values_s:
        return {}
    ms = [v * 1000 for v in values_s]
    return {"p50": round(percentile(ms, 50), 2), "p99": round(percentile(ms, 99), 2), "max": round(max(ms), 2)}


def bench(sizes: Sizes) -> Figure:
    """Measured with the stack in notify mode, then in logical mode; the figure is notify mode's."""
    results = {}
    for mode in MODES:
        with capture_mode(mode):
            results[mode] = measure(sizes)
    notify, logical = results["notify"], results["logical"]
    logical_total = logical.details["total_ms"]
    countries = {mode: results[mode].details["country_key"]["total_ms"] for mode in MODES}
    notify.met = bool(notify.met) and bool(logical_total) and logical.details["missing"] == 0 \
        and logical_total["p99"] <= P99_TARGET_MS \
        and all(c and c["p99"] <= P99_TARGET_MS for c in countries.values())
    fresh = {mode: results[mode].details["capital_rename_to_fresh_ms"] for mode in MODES}
    notify.note = (f"notify: {notify.note}. logical: p50 {logical_total.get('p50')}, {logical.note}. "
                   f"country_ key p50/p99: notify {countries['notify'].get('p50')}/{countries['notify'].get('p99')} ms, "
                   f"logical {countries['logical'].get('p50')}/{countries['logical'].get('p99')} ms; capital rename "
                   f"to a fresh /countries p50/p99: notify {fresh['notify'].get('p50')}/{fresh['notify'].get('p99')} ms, "
                   f"logical {fresh['logical'].get('p50')}/{fresh['logical'].get('p99')} ms")
    notify.details = {"notify": notify.details, "logical": logical.details}
    notify.target += " (both modes, both keys)"
    return notify


def measure(sizes: Sizes) -> Figure:
    with bench_rows() as rows, bench_countries(rows) as capitals:
        by_code = defaultdict(list)
        for row_id, code in rows.items():
            by_code[code].append(row_id)
        codes = sorted(by_code)
        watch = DelWatch("QZ*").start()
        country_watch = DelWatch("QZ*", prefix=COUNTRIES.template.prefix).start()
        tap = KafkaTap().start()
        time.sleep(1.0)  # let the bench rows' own invalidations pass
        commits = []  # (code, t_before, t_after)
        try:
            with pg_conn(application_name="bench-commit") as conn, conn.cursor() as cur:
                start = time.monotonic()
                for i in range(sizes.commits):
                    code = codes[i % len(codes)]
                    watch.redis.set(CITIES.key(code), b"bench marker", ex=60)
                    watch.redis.set(COUNTRIES.key(code), b"bench marker", ex=60)
                    row_id = by_code[code][(i // len(codes)) % len(by_code[code])]
                    t0 = time.time()
                    cur.execute("UPDATE city SET population = population + 1 WHERE id = %s", (row_id,))
                    commits.append((code, t0, time.time()))
                    pause = start + (i + 1) * sizes.commit_interval_s - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
            wait_for(lambda: len(watch.dels) >= len(commits) and len(country_watch.dels) >= len(commits), 15,
                     "every commit's DELs")
        except TimeoutError:
            pass  # reported below as missing
        finally:
            time.sleep(0.2)
            watch.stop()
            country_watch.stop()
            tap.stop()
        renames = capital_renames(capitals, max(10, sizes.commits // 10))
    figure = summarize(sizes, commits, watch.dels, tap.seen, CITIES.template.prefix)
    figure.details["country_key"] = summarize(sizes, commits, country_watch.dels, tap.seen,
                                              COUNTRIES.template.prefix).details
    figure.details["capital_rename_to_fresh_ms"] = stats(renames)
    return figure


def capital_renames(capitals: dict[str, int], count: int) -> list[float]:
    """Rename a country's capital (its city row), then GET /countries/<code> until it names the new
    one: the time from just before the commit, `count` times, one every RENAME_INTERVAL_S."""
    found = []
    codes = sorted(capitals)
    with pg_conn(application_name="bench-rename") as conn, conn.cursor() as cur, requests.Session() as http:
        for i in range(count):
            code = codes[i % len(codes)]
            url = f"{base_url()}/countries/{code}"
            for _ in range(3):  # warm: in Redis and in the near caches
                http.get(url, timeout=5)
            name = f"Bench capital {i}"
            started = time.perf_counter()
            cur.execute("UPDATE city SET name = %s WHERE id = %s", (name, capitals[code]))
            deadline = started + 10
            while time.perf_counter() < deadline:
                if http.get(url, timeout=5).json()["data"]["capital"] == name:
                    found.append(time.perf_counter() - started)
                    break
            time.sleep(RENAME_INTERVAL_S)
    return found


def summarize(sizes: Sizes, commits, dels, seen, prefix: str) -> Figure:
    """The DELs of keys under `prefix` matched to the commits and the events that carried them."""
    dels_by_code, events_by_code = defaultdict(list), defaultdict(list)
    for t, code in dels:
        dels_by_code[code].append(t)
    for t_seen, _, _, event in seen:
        if event.key is not None and event.key.startswith(prefix):
            events_by_code[event.key[len(prefix):]].append((t_seen, event))
    total, to_listener, to_kafka, to_del, missing = [], [], [], [], 0
    for code, t0, t1 in commits:
        t_del = next((t for t in dels_by_code[code] if t > t0), None)
        if t_del is None:
            missing += 1
            continue
        dels_by_code[code].remove(t_del)
        match = next(((ts, e) for ts, e in events_by_code[code]
                      if e.committed_at is not None and t0 - 0.01 <= e.committed_at <= t1 + 0.01), None)
        if match is None:
            total.append(t_del - t1)  # no event seen: from the commit's return instead
            continue
        t_seen, event = match
        events_by_code[code].remove(match)
        total.append(t_del - event.committed_at)
        if event.published_at is not None:
            to_listener.append(event.published_at - event.committed_at)
            to_kafka.append(t_seen - event.published_at)
        to_del.append(t_del - t_seen)
    overall = stats(total)
    met = bool(overall) and missing == 0 and overall["p50"] <= P50_TARGET_MS and overall["p99"] <= P99_TARGET_MS
    return Figure(
        2, "commit-to-DEL latency p50", overall.get("p50"), "ms",
        f"p50 <= {P50_TARGET_MS:g} ms, p99 <= {P99_TARGET_MS:g} ms", met,
        details={"commits": len(commits), "measured": len(total), "missing": missing,
                 "rate_per_s": round(1 / sizes.commit_interval_s), "total_ms": overall,
                 "hops_ms": {"commit->listener": stats(to_listener), "listener->kafka": stats(to_kafka),
                             "kafka->DEL": stats(to_del)}},
        note=(f"p99 {overall.get('p99')} ms, max {overall.get('max')} ms; hops p50: "
              f"listener {stats(to_listener).get('p50')}, kafka {stats(to_kafka).get('p50')}, "
              f"DEL {stats(to_del).get('p50')} ms" + (f"; {missing} missing" if missing else "")))
