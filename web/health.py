"""GET /health: each dependency by name; 200 when all are up, 503 when any is down."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, jsonify

from citycache.clients import kafka_admin
from web.resources import Resources, get_resources

bp = Blueprint("health", __name__)
CHECK_TIMEOUT_S = 3.0
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")


def check_postgres(r: Resources) -> None:
    r.query(lambda conn: conn.cursor().execute("SELECT 1"))


def check_redis(r: Resources) -> None:
    r.cache.redis.ping()


def check_kafka(r: Resources) -> None:
    admin = kafka_admin(r.settings, timeout_ms=int(CHECK_TIMEOUT_S * 1000))
    try:
        admin.describe_cluster()
    finally:
        admin.close()


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
    return result


@bp.get("/health")
def health():
    resources = get_resources()
    futures = {name: _pool.submit(_timed, check, resources) for name, check in CHECKS.items()}
    checks = {}
    for name, future in futures.items():
        try:
            checks[name] = future.result(timeout=CHECK_TIMEOUT_S + 2)
        except TimeoutError:
            checks[name] = {"status": "down", "error": "check timed out"}
    healthy = all(check["status"] == "up" for check in checks.values())
    response = jsonify(status="up" if healthy else "down", checks=checks)
    response.status_code = 200 if healthy else 503
    return response
