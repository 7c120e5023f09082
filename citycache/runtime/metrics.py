"""Prometheus metrics of the API and both workers, in prometheus_client's multiprocess mode.

Every process (each gunicorn worker, pg_listener, kafka_cleaner) writes its samples to files named
after its pid in one directory; GET /metrics on the API adds them up, so one scrape shows all three
programs. prometheus_client picks its storage when it is first imported, from
PROMETHEUS_MULTIPROC_DIR in the environment, so each program calls setup() first thing: in main(),
and in gunicorn's master before it forks. Importing this module does nothing: each metric is made
on first use, so a unit test that imports a worker writes no file anywhere.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path

from citycache.settings import Settings, SettingsError

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def setup(settings: Settings) -> str:
    """Make the sample directory and point prometheus_client at it; returns its absolute path."""
    directory = os.path.abspath(settings.prometheus_multiproc_dir)
    try:
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK):
            raise PermissionError("not writable")
    except OSError as exc:
        raise SettingsError(f"invalid settings: {ENV_VAR}: cannot use {directory}: {exc.strerror or exc}") from None
    values = sys.modules.get("prometheus_client.values")
    if values is not None and os.environ.get(ENV_VAR) != directory:
        raise RuntimeError("prometheus_client was imported before metrics.setup(): its samples would stay in memory")
    os.environ[ENV_VAR] = directory
    return directory


def directory() -> str:
    """The sample directory setup() chose for this process."""
    return os.environ[ENV_VAR]


class _OnFirstUse:
    """A metric made when first used (after setup()), not when this module is imported."""

    _lock = threading.Lock()

    def __init__(self, kind: str, *args, **kwargs) -> None:
        self._kind, self._args, self._kwargs, self._metric = kind, args, kwargs, None

    def _made(self):
        if self._metric is None:
            with self._lock:
                if self._metric is None:
                    import prometheus_client

                    self._metric = getattr(prometheus_client, self._kind)(*self._args, **self._kwargs)
        return self._metric

    def __getattr__(self, name: str):
        value = getattr(self._made(), name)
        # Kept on the proxy: the next use (once per request on the hot path) is a plain attribute.
        setattr(self, name, value)
        return value


class _ChildOnFirstUse:
    """`metric.labels(*values)`, resolved on first use and then kept: .labels() takes a lock and
    builds a key each call, which costs more than the increment a request makes."""

    def __init__(self, metric: _OnFirstUse, *values: str) -> None:
        self._parent, self._values = metric, values

    def __getattr__(self, name: str):
        value = getattr(self._parent.labels(*self._values), name)
        setattr(self, name, value)
        return value


def Counter(*args, **kwargs) -> _OnFirstUse:  # noqa: N802  (reads like the class it stands for)
    return _OnFirstUse("Counter", *args, **kwargs)


def Histogram(*args, **kwargs) -> _OnFirstUse:  # noqa: N802
    return _OnFirstUse("Histogram", *args, **kwargs)


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Requests: a hit from the near cache takes ~0.1 ms, so the first bucket is below that; few buckets
# because each one is a file-backed value every observation may touch (multiprocess mode).
HTTP_BUCKETS = (0.00025, 0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0)

# The API.
HTTP_REQUESTS = Counter("citycache_http_requests_total", "HTTP requests by route and status",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("citycache_http_request_duration_seconds", "Time to answer (streamed bodies: "
                         "until the response starts)", ["route"], buckets=HTTP_BUCKETS)
CACHE_LOOKUPS = Counter("citycache_cache_lookups_total",
                        "Lookups per resource (cities, countries): hit (from the cache) or miss (the database)",
                        ["resource", "result"])


def cache_lookups(resource: str) -> tuple[_ChildOnFirstUse, _ChildOnFirstUse]:
    """(hits, misses) of one resource, resolved once."""
    found = _LOOKUPS.get(resource)
    if found is None:
        found = _LOOKUPS[resource] = (_ChildOnFirstUse(CACHE_LOOKUPS, resource, "hit"),
                                      _ChildOnFirstUse(CACHE_LOOKUPS, resource, "miss"))
    return found


_LOOKUPS: dict[str, tuple[_ChildOnFirstUse, _ChildOnFirstUse]] = {}
# The near cache in each API process (citycache/read/near_cache.py).
NEAR_LOOKUPS = Counter("citycache_near_cache_lookups_total",
                       "Near-cache lookups: hit, miss, or bypass (contact with Redis lost)", ["result"])
NEAR_HITS, NEAR_MISSES, NEAR_BYPASS = (_ChildOnFirstUse(NEAR_LOOKUPS, r) for r in ("hit", "miss", "bypass"))
NEAR_EVICTIONS = Counter("citycache_near_cache_evictions_total", "Near-cache entries evicted to stay in budget")
NEAR_INVALIDATIONS = Counter("citycache_near_cache_invalidations_total",
                             "Near-cache entries dropped by a Redis invalidation push")
NEAR_LOST = Counter("citycache_near_cache_lost_total",
                    "Times an invalidation connection was lost or the cluster's view changed"
                    " (each one flushed the near cache)")
DB_QUERY_SECONDS = Histogram("citycache_db_query_seconds", "Time of the API's database queries",
                             buckets=LATENCY_BUCKETS)
# The workers.
PUBLISHED = Counter("citycache_invalidations_published_total", "Invalidation events Kafka acknowledged")
APPLIED = Counter("citycache_invalidations_applied_total", "Invalidation events applied to Redis")
BAD_EVENTS = Counter("citycache_bad_events_skipped_total", "Malformed events logged and skipped", ["source"])
COMMIT_TO_DEL = Histogram("citycache_commit_to_delete_seconds",
                          "From the database commit to the Redis DEL of its key", buckets=LATENCY_BUCKETS)

# The consistency sampler (workers/consistency_sampler.py).
SAMPLE_RESULTS = ("consistent", "late", "stale")
CONSISTENCY_SAMPLES = Counter("citycache_consistency_samples_total",
                              "Cached keys the sampler compared with the database: consistent, late (a mismatch "
                              "that healed within SAMPLER_STALE_AFTER_SECONDS) or stale", ["resource", "result"])
# From the sampler's first sight of a mismatch to its heal; a stale one is observed when declared.
INCONSISTENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
INCONSISTENCY_SECONDS = Histogram("citycache_inconsistency_seconds",
                                  "How long a mismatch the sampler found lived: until it healed, or until it was "
                                  "declared stale", ["resource"], buckets=INCONSISTENCY_BUCKETS)

_SAMPLE_FILE = re.compile(r".*_(\d+)\.db")


def remove_dead_files(sample_dir: str) -> int:
    """Delete the sample files of processes that are gone (at gunicorn's start); keep the live ones."""
    removed = 0
    for path in Path(sample_dir).glob("*.db"):
        match = _SAMPLE_FILE.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
