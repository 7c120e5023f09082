"""Prometheus metrics of the API and both workers, in prometheus_client's multiprocess mode.

Every process (each gunicorn worker, pg_listener, kafka_cleaner) writes its samples to files named
after its pid in one directory; GET /metrics on the API adds them up, so one scrape shows all three
programs. prometheus_client picks its storage when first imported, from PROMETHEUS_MULTIPROC_DIR in
the environment: this module puts the setting there first. Import prometheus_client only after it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from citycache.settings import SettingsError, get_settings

MULTIPROC_DIR = os.path.abspath(get_settings().prometheus_multiproc_dir)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = MULTIPROC_DIR
try:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    if not os.access(MULTIPROC_DIR, os.W_OK):
        raise PermissionError("not writable")
except OSError as exc:
    raise SettingsError(f"invalid settings: PROMETHEUS_MULTIPROC_DIR: cannot use {MULTIPROC_DIR}: "
                        f"{exc.strerror or exc}") from None

from prometheus_client import Counter, Histogram  # noqa: E402  (after the directory is set)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Requests: a hit from the near cache takes ~0.1 ms, so the first bucket is below that; few buckets
# because each one is a file-backed value every observation may touch (multiprocess mode).
HTTP_BUCKETS = (0.00025, 0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0)

# The API.
HTTP_REQUESTS = Counter("citycache_http_requests_total", "HTTP requests by route and status",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("citycache_http_request_duration_seconds", "Time to answer (streamed bodies: "
                         "until the response starts)", ["route"], buckets=HTTP_BUCKETS)
CACHE_LOOKUPS = Counter("citycache_cache_lookups_total", "GET /cities lookups: hit (from Redis) or miss (DB)",
                        ["result"])
# Children resolved once: a .labels() call per request costs more than the increment itself.
CACHE_HITS, CACHE_MISSES = CACHE_LOOKUPS.labels("hit"), CACHE_LOOKUPS.labels("miss")
# The near cache in each API process (citycache/near_cache.py).
NEAR_LOOKUPS = Counter("citycache_near_cache_lookups_total",
                       "Near-cache lookups: hit, miss, or bypass (contact with Redis lost)", ["result"])
NEAR_HITS, NEAR_MISSES, NEAR_BYPASS = (NEAR_LOOKUPS.labels(r) for r in ("hit", "miss", "bypass"))
NEAR_EVICTIONS = Counter("citycache_near_cache_evictions_total", "Near-cache entries evicted to stay in budget")
NEAR_INVALIDATIONS = Counter("citycache_near_cache_invalidations_total",
                             "Near-cache entries dropped by a Redis invalidation push")
NEAR_LOST = Counter("citycache_near_cache_lost_total",
                    "Times the invalidation connection was lost (each one flushed the near cache)")
DB_QUERY_SECONDS = Histogram("citycache_db_query_seconds", "Time of the API's database queries",
                             buckets=LATENCY_BUCKETS)
# The workers.
PUBLISHED = Counter("citycache_invalidations_published_total", "Invalidation events Kafka acknowledged")
APPLIED = Counter("citycache_invalidations_applied_total", "Invalidation events applied to Redis")
BAD_EVENTS = Counter("citycache_bad_events_skipped_total", "Malformed events logged and skipped", ["source"])
COMMIT_TO_DEL = Histogram("citycache_commit_to_delete_seconds",
                          "From the database commit to the Redis DEL of its key", buckets=LATENCY_BUCKETS)

_SAMPLE_FILE = re.compile(r".*_(\d+)\.db")


def remove_dead_files(directory: str = MULTIPROC_DIR) -> int:
    """Delete the sample files of processes that are gone (at gunicorn's start); keep the live ones."""
    removed = 0
    for path in Path(directory).glob("*.db"):
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
