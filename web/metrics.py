"""GET /metrics: the samples of every process (multiprocess mode) plus the pipeline's and the dependencies'
state right now (what /health reads, as gauges the alert rules in ops/prometheus/ use)."""
from __future__ import annotations

import functools
import logging
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from citycache import pipeline
from citycache.runtime.metrics import HTTP_REQUESTS, HTTP_SECONDS, directory
from web import health
from web.resources import get_resources

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)


class PipelineCollector:
    """Dependencies up, outbox backlog, consumer lag, heartbeats, read at scrape time (a failed read is left out)."""

    def __init__(self, resources) -> None:
        self.resources = resources

    def collect(self):
        r = self.resources
        checked = health.run_checks(r)  # the dependencies' checks run beside the pipeline's reads
        state = pipeline.snapshot(r.settings, query=r.query, cache=r.cache.redis, admin=r.kafka)
        up = GaugeMetricFamily("citycache_dependency_up", "1 when the dependency answers its /health check, else 0",
                               labels=["dependency"])
        for name, check in checked().items():
            up.add_metric([name], 1 if check["status"] == "up" else 0)
        yield up
        for name, documentation, value, error in (
                ("citycache_outbox_backlog", "Outbox rows waiting for Kafka", state.outbox_backlog, state.outbox_error),
                ("citycache_consumer_lag", "Messages the cleaners' group has not committed", state.total_lag,
                 state.lag_error)):
            if value is None:  # a dependency that is down leaves its gauge out of this scrape
                log.info("pipeline gauge not read", extra={"metric": name, "error": error})
            else:
                yield GaugeMetricFamily(name, documentation, value=value)
        slot = GaugeMetricFamily("citycache_replication_slot_retained_wal_bytes",
                                 "WAL logical mode's slot retains (absent: no slot, notify mode)", labels=["slot"])
        if state.replication_slot is not None:
            slot.add_metric([state.replication_slot["slot"]], state.replication_slot["retained_wal_bytes"])
        yield slot
        yield GaugeMetricFamily("citycache_replication_slot_warning_bytes",
                                "Retained WAL past which /health warns (SLOT_WAL_WARNING_BYTES)",
                                value=r.settings.slot_wal_warning_bytes)
        ages = GaugeMetricFamily("citycache_worker_heartbeat_age_seconds",
                                 "Seconds since each worker's last heartbeat (absent: no heartbeat)",
                                 labels=["worker"])
        for worker, age in (state.workers or {}).items():
            if age is not None:
                ages.add_metric([worker], age)
        yield ages
        alive = GaugeMetricFamily("citycache_worker_up", "1 while a worker's heartbeat key lives, 0 when none does "
                                  "(absent: heartbeats unreadable, Redis is down)", labels=["worker"])
        if state.workers is not None:
            for worker, up in state.workers_up().items():
                alive.add_metric([worker], 1 if up else 0)
        yield alive


@bp.get("/metrics")
def metrics():
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory())
    registry.register(PipelineCollector(get_resources()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@functools.lru_cache(maxsize=1024)
def _counter(method: str, route: str, status: int):
    # Resolved once per series: prometheus_client's .labels() takes a lock and builds a key each call.
    return HTTP_REQUESTS.labels(method, route, str(status))


@functools.lru_cache(maxsize=1024)
def _histogram(route: str):
    return HTTP_SECONDS.labels(route)


def init_app(app: Flask) -> None:
    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def count(response):
        # The rule, not the path: /cities/<code> is one series, not one per code.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        _counter(request.method, route, response.status_code).inc()
        started = g.get("metrics_started")
        if started is not None:
            _histogram(route).observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)
