"""The last minutes of invalidation, for the page: how consistent the sampler found the cache, and the
commit->DEL latency, step by step, drawn as sparklines (inline SVG rendered here: the page has no script).

Each API process snapshots the cumulative samples every STEP_SECONDS from the multiprocess sample files
(the ones GET /metrics adds up: the sampler's and kafka_cleaner's too) in a thread of its own, and keeps
the last KEEP. A step's figures are the differences between two snapshots.
"""
from __future__ import annotations

import glob
import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

from citycache.runtime import metrics

log = logging.getLogger(__name__)
STEP_SECONDS = 5.0
KEEP = 120  # ten minutes of steps
SAMPLES, LATENCY = "citycache_consistency_samples", "citycache_commit_to_delete_seconds"
WIDTH, HEIGHT = 240, 36
LOG_FLOOR = 0.001  # the latency line's bottom, in seconds


@dataclass(frozen=True)
class Snapshot:
    at: float
    results: dict[str, float]  # samples by result (consistent, late, stale), over every resource
    buckets: tuple[tuple[float, float], ...]  # commit->DEL: (upper bound, cumulative count)


def read(directory: str) -> Snapshot:
    from prometheus_client.multiprocess import MultiProcessCollector

    results, buckets = dict.fromkeys(metrics.SAMPLE_RESULTS, 0.0), {}
    for family in MultiProcessCollector.merge(glob.glob(os.path.join(directory, "*.db")), accumulate=True):
        if family.name == SAMPLES:
            for sample in family.samples:
                results[sample.labels["result"]] = results.get(sample.labels["result"], 0.0) + sample.value
        elif family.name == LATENCY:
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets[float(sample.labels["le"])] = sample.value
    return Snapshot(time.time(), results, tuple(sorted(buckets.items())))


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative histogram buckets, interpolated within its bucket as Prometheus'
    histogram_quantile does; None without observations. Past the last finite bound: that bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below) if count > below else bound
        lower, below = bound, count
    return lower


@dataclass(frozen=True)
class Step:
    at: float
    samples: float
    consistent: float
    late: float
    stale: float
    p99: float | None  # seconds, None: no invalidation in this step

    @property
    def ratio(self) -> float | None:
        return self.consistent / self.samples if self.samples else None


def steps(snapshots: list[Snapshot]) -> list[Step]:
    found = []
    for before, after in zip(snapshots, snapshots[1:]):
        grew = {r: max(0.0, after.results.get(r, 0) - before.results.get(r, 0)) for r in after.results}
        old = dict(before.buckets)
        deltas = [(bound, max(0.0, count - old.get(bound, 0.0))) for bound, count in after.buckets]
        found.append(Step(after.at, sum(grew.values()), grew.get("consistent", 0), grew.get("late", 0),
                          grew.get("stale", 0), quantile(0.99, deltas)))
    return found


def sparkline(values: list[float | None], low: float, high: float) -> dict:
    """Points of an SVG polyline per run of known values (gaps stay gaps), scaled into WIDTH x HEIGHT: the
    newest step at the right edge, KEEP steps across (the first minutes fill from the right)."""
    span, first = (high - low) or 1.0, KEEP - len(values)
    runs, run = [], []
    for i, value in enumerate(values):
        if value is None:
            if run:
                runs.append(run)
            run = []
            continue
        y = HEIGHT - 2 - (HEIGHT - 4) * (min(max(value, low), high) - low) / span
        run.append(f"{WIDTH * (first + i) / (KEEP - 1):.1f},{y:.1f}")
    if run:
        runs.append(run)
    return {"width": WIDTH, "height": HEIGHT, "low": low, "high": high,
            "lines": [" ".join(r) for r in runs if len(r) > 1], "dots": [r[0].split(",") for r in runs if len(r) == 1]}


class Trends:
    """The snapshots of one API process, and what the page shows of them."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.snapshots: deque[Snapshot] = deque(maxlen=KEEP + 1)
        self._lock = threading.Lock()
        self._pid: int | None = None

    def record(self) -> None:
        snapshot = read(self.directory)
        with self._lock:
            self.snapshots.append(snapshot)

    def start(self) -> None:
        """The snapshot thread, once per process (a gunicorn worker after its fork)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="trends", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                self.record()
            except Exception as exc:  # a sample file caught mid-write: the next step reads it again
                log.warning("trend snapshot failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            time.sleep(STEP_SECONDS)

    def panel(self) -> dict:
        """What the page's panel shows: totals over the window, the latest step, and both sparklines."""
        with self._lock:
            found = steps(list(self.snapshots))
        if not found:
            return {"ready": False}
        samples = sum(s.samples for s in found)
        ratios = [s.ratio for s in found]
        known = [r for r in ratios if r is not None]
        latencies = [s.p99 for s in found]
        slow = [v for v in latencies if v is not None]
        longest = max(metrics.LATENCY_BUCKETS)  # a p99 there fell past the last bucket: it is at least that
        return {
            "ready": True, "minutes": round((found[-1].at - found[0].at + STEP_SECONDS) / 60, 1),
            "samples": int(samples), "late": int(sum(s.late for s in found)), "stale": int(sum(s.stale for s in found)),
            "consistency": (sum(s.consistent for s in found) / samples * 100) if samples else None,
            "lowest": min(known) * 100 if known else None,
            "consistency_line": sparkline([r * 100 if r is not None else None for r in ratios],
                                          min(95.0, min(known) * 100) if known else 95.0, 100.0),
            "latency": duration(next((v for v in reversed(latencies) if v is not None), None), longest),
            "latency_max": duration(max(slow), longest) if slow else None,
            # Log scale, 1 ms up: milliseconds and a stopped worker's minutes in one line.
            "latency_line": sparkline([math.log10(max(v, LOG_FLOOR)) if v is not None else None for v in latencies],
                                      math.log10(LOG_FLOOR), math.log10(max([*slow, 10 * LOG_FLOOR]))),
            "latency_scale": (duration(LOG_FLOOR, longest), duration(max([*slow, 10 * LOG_FLOOR]), longest)),
        }


def duration(seconds: float | None, longest: float) -> str | None:
    """1.2 ms, 340 ms, 2.5 s; "≥ 30 s" where it reached the last bucket's bound."""
    if seconds is None:
        return None
    text = f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"
    return f"≥ {text}" if seconds >= longest else text


_trends: Trends | None = None


def get() -> Trends:
    global _trends
    if _trends is None:
        _trends = Trends(metrics.directory())
    return _trends


def start() -> None:
    """Called in each gunicorn worker once it started (web/gunicorn.conf.py)."""
    get().start()
