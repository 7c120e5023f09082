"""GET /health (readiness): dependencies, worker heartbeats, backlog and lag; GET /health/live.

/health is 200 when Postgres, Redis, Kafka and S3 answer and both invalidating workers beat
(pg_listener, kafka_cleaner); 503 otherwise, with the failing parts named in `failing`. The
consistency_sampler's heartbeat is reported under `workers` too, but a stopped sampler does not fail
readiness: the API still serves correct data (its alert, CityCacheWorkerDown, says it). Outbox
backlog and consumer lag are reported (null when they cannot be read) but do not fail readiness: a
backlog drains, and the API still serves correct data.
So is logical mode's replication slot (`replication_slot`: retained WAL, `warning` past the threshold).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, jsonify

from citycache import pipeline
from citycache.runtime import heartbeat
from web.resources import CHECK_TIMEOUT_S, Resources, get_resources

bp = Blueprint("health", __name__)
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")


def check_postgres(r: Resources) -> None:
    r.query(lambda conn: conn.cursor().execute("SELECT 1"))


def check_redis(r: Resources) -> None:
    r.cache.redis.ping()


def check_kafka(r: Resources) -> None:
    r.kafka.call(lambda client: client.describe_cluster())


def check_s3(r: Resources) -> None:
    if not r.s3.bucket_exists(r.settings.s3_bucket):
        raise LookupError(f"bucket {r.settings.s3_bucket} does not exist")


CHECKS = {"postgres": check_postgres, "redis": check_redis, "kafka": check_kafka, "s3": check_s3}


def _timed(check, resources: Resources) -> dict:
    started = time.perf_counter()
    try:
        check(resources)
        result = {"status": "up"}
    except Exception as exc:  # any failure of a dependency is reported, not raised
        result = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    result["checked_at"] = round(time.time(), 3)
    return result


def _workers(state: pipeline.PipelineState) -> dict:
    if state.workers is None:  # Redis down: no heartbeat can be read
        return {w: {"status": "down", "error": f"heartbeats unreadable: {state.workers_error}"}
                for w in heartbeat.WORKERS}
    return {w: {"status": "up", "age_s": age} if age is not None else
            {"status": "down", "error": f"no heartbeat for {heartbeat.TTL_SECONDS} s"} for w, age in state.workers.items()}


def run_checks(r: Resources):
    """Start every dependency's check at once; the function returned waits for their results."""
    futures = {name: _pool.submit(_timed, check, r) for name, check in CHECKS.items()}

    def results() -> dict[str, dict]:
        checks = {}
        for name, future in futures.items():
            try:
                checks[name] = future.result(timeout=CHECK_TIMEOUT_S + 2)
            except TimeoutError:
                checks[name] = {"status": "down", "error": "check timed out"}
        return checks

    return results


@bp.get("/health/live")
def live():
    """The process answers; nothing else is checked (a liveness probe must not fail on a dependency)."""
    return jsonify(status="up")


@bp.get("/health")
def health():
    r = get_resources()
    checked = run_checks(r)
    state = pipeline.snapshot(r.settings, query=r.query, cache=r.cache.redis, admin=r.kafka,
                              timeout=CHECK_TIMEOUT_S + 2)
    checks = checked()
    workers = _workers(state)
    failing = [name for name, c in checks.items() if c["status"] != "up"]
    failing += [name for name, w in workers.items()
                if w["status"] != "up" and name in heartbeat.INVALIDATING_WORKERS]
    response = jsonify(status="down" if failing else "up", failing=failing, checks=checks, workers=workers,
                       outbox_backlog=state.outbox_backlog, consumer_lag=state.total_lag,
                       replication_slot=state.replication_slot)
    response.status_code = 503 if failing else 200
    return response
