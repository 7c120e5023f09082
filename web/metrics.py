"""GET /metrics: the samples of every process (multiprocess mode) plus the pipeline's state right now."""
from __future__ import annotations

import functools
import logging
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from citycache import heartbeat, pipeline
from citycache.metrics import HTTP_REQUESTS, HTTP_SECONDS, MULTIPROC_DIR
from web.resources import get_resources

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)


class PipelineCollector:
    """Outbox backlog, consumer lag and heartbeat ages, read at scrape time (a failed read is left out)."""

    def __init__(self, resources) -> None:
        self.resources = resources

    def collect(self):
        r = self.resources
        yield from self._one("citycache_outbox_backlog", "Outbox rows waiting for Kafka",
                             lambda: r.query(pipeline.outbox_backlog))
        yield from self._one("citycache_consumer_lag", "Messages the cleaners' group has not committed",
                             lambda: sum(pipeline.consumer_lag(r.settings, timeout_ms=2000).values()))
        ages = GaugeMetricFamily("citycache_worker_heartbeat_age_seconds",
                                 "Seconds since each worker's last heartbeat (absent: no heartbeat)",
                                 labels=["worker"])
        try:
            for worker, age in heartbeat.ages(r.cache.redis).items():
                if age is not None:
                    ages.add_metric([worker], age)
        except Exception as exc:  # Redis down: the family stays empty
            log.info("heartbeats not read for metrics", extra={"error": str(exc)})
        yield ages

    @staticmethod
    def _one(name: str, documentation: str, read):
        try:
            value = read()
        except Exception as exc:  # a dependency that is down leaves its gauge out of this scrape
            log.info("pipeline gauge not read", extra={"metric": name, "error": f"{type(exc).__name__}: {exc}"})
            return
        yield GaugeMetricFamily(name, documentation, value=value)


@bp.get("/metrics")
def metrics():
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
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
