"""Long-lived clients, made once per gunicorn worker process and shared by its threads."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app
from minio import Minio

from citycache.pipeline import KafkaAdmin
from citycache.read.cache import LeasedCache
from citycache.read.near_cache import NearCache
from citycache.read.resources import RESOURCES
from citycache.read.tracking import InvalidationListener
from citycache.rules import Rules
from citycache.runtime.clients import pg_connect, redis_client, s3_client
from citycache.runtime.metrics import DB_QUERY_SECONDS
from citycache.runtime.pgpool import PgPool
from citycache.runtime.startup import checked_rules
from citycache.settings import Settings

log = logging.getLogger(__name__)
# How long a health check or a pipeline read may wait for a dependency.
CHECK_TIMEOUT_S = 3.0


@dataclass
class Resources:
    settings: Settings
    rules: Rules
    pg_pool: PgPool
    cache: LeasedCache
    s3: Minio
    kafka: KafkaAdmin  # for /health and /metrics: one connection per process, not one per request
    near: NearCache | None = None
    listener: InvalidationListener | None = None

    def near_cache(self) -> NearCache | None:
        """The near cache (None when turned off), its invalidation thread started in this process:
        lazily, so each gunicorn worker gets its own connection after the fork."""
        if self.listener is not None:
            self.listener.ensure_started()
        return self.near

    def query(self, work):
        """Run `work(conn)` on a pooled autocommit connection (once more on a new one if it had lost
        its server)."""
        with DB_QUERY_SECONDS.time():
            return self.pg_pool.query(work)


def pool_size(settings: Settings) -> int:
    """Postgres connections one API process may hold: one per request thread and two to spare."""
    return settings.web_threads + 2


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    # Checked against the database by gunicorn's master before it forks (web/gunicorn.conf.py): here
    # the form only, and that every resource's keys are some rule's.
    rules = app.config.get("RULES") or checked_rules(settings, against_database=False)
    for resource in RESOURCES:
        resource.check(rules)
    # Nothing connects at start, so the app comes up (and says 503) while Postgres is down; from the
    # first use on, connections stay open for the next request.
    pool = PgPool(lambda: pg_connect(settings, application_name="web"), pool_size(settings),
                  wait_seconds=CHECK_TIMEOUT_S)
    # On a Redis Cluster the listener tracks every primary and follows the topology (citycache/read/tracking.py).
    near = NearCache(settings.near_cache_max_bytes) if settings.near_cache_enabled else None
    app.extensions["city_cache"] = Resources(
        settings=settings,
        rules=rules,
        pg_pool=pool,
        cache=LeasedCache(redis_client(settings), settings.cache_ttl_seconds),
        s3=s3_client(settings, pool_size=settings.web_threads),
        kafka=KafkaAdmin(settings, timeout_ms=int(CHECK_TIMEOUT_S * 1000)),
        near=near,
        listener=(InvalidationListener(settings.redis_url, near, rules.tracking_prefixes,
                                       cluster=settings.redis_cluster) if near is not None else None),
    )


def get_resources() -> Resources:
    return current_app.extensions["city_cache"]
