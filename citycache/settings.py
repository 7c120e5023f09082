"""Settings from the environment, optionally from a .env file; every one is documented in .env.example."""
from __future__ import annotations

import functools
import os
import shlex
import sys
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "postgresql://postgres:root@localhost:5432/tutorial"
    redis_url: str = "redis://localhost:6379/0"
    # REDIS_URL names one node of a Redis Cluster (the client discovers the rest); db 0 only.
    redis_cluster: bool = False
    # A DEL counts as applied (and its Kafka offset is committed) only once this many replicas hold
    # it (WAIT), wherever the primary has replicas: a failover then cannot bring back a stale value.
    redis_delete_replicas: int = Field(default=1, ge=0)
    redis_wait_timeout_ms: int = Field(default=1000, gt=0)
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_consumer_group: str = "kafka_cleaner"
    kafka_topic_partitions: int = Field(default=3, gt=0)
    # Replicas of city_updates when the workers create it; with 3, min.insync.replicas is 2.
    kafka_replication_factor: int = Field(default=1, gt=0)
    # Brokers ops/services.sh starts locally (ports KAFKA_PORT + 2*i, controllers one above each).
    kafka_brokers: int = Field(default=1, gt=0, le=9)
    # Static membership: a cleaner restarted under the same id gets its partitions back at once,
    # without a rebalance. Unique per running cleaner; empty = dynamic membership.
    kafka_group_instance_id: str = Field(default="", max_length=249)
    # How long the group waits for a silent cleaner before its partitions go to another one; the
    # brokers' group.min.session.timeout.ms bounds it from below (6000 by default).
    kafka_session_timeout_ms: int = Field(default=6000, ge=1000)
    s3_endpoint: str = "localhost:9000"
    s3_access_key: str = "cityadmin"
    s3_secret_key: str = "citysecret"
    s3_bucket: str = "images"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    cache_ttl_seconds: int = Field(default=320, gt=0)
    http_port: int = Field(default=8000, gt=0, lt=65536)
    web_workers: int = Field(default=2, gt=0)
    web_threads: int = Field(default=8, gt=0)
    # How pg_listener captures changes: "notify" (triggers, an outbox, NOTIFY as the wake-up) or
    # "logical" (the WAL through a pgoutput slot; needs wal_level=logical; nothing in the writers' path).
    capture_mode: str = Field(default="notify", pattern="^(notify|logical)$")
    # Logical mode's replication slot (created if missing; notify mode drops a slot of this name it finds).
    replication_slot: str = Field(default="city_cache", pattern="^[a-z0-9_]{1,63}$")
    # Logical mode writes a tiny WAL message this often, so an idle city table does not pin WAL.
    logical_heartbeat_seconds: float = Field(default=10.0, gt=0)
    # /health and /metrics warn when the slot retains more WAL than this (bytes).
    slot_wal_warning_bytes: int = Field(default=1 << 30, gt=0)
    # The longest pg_listener gathers changes before it publishes them, reached while they come at
    # 5,000/s or faster; shorter at lower rates, down to at once (citycache/write/window.py). Longer: less
    # work per commit for the pipeline under write load, for that much more commit->DEL latency.
    capture_window_ms: int = Field(default=250, ge=0, le=10_000)
    # pg_listener reads the outbox at least this often without a NOTIFY: a safety net only, since
    # writers notify whenever it may be asleep (db/trigger.sql, citycache/write/wakeup.py).
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # The consistency sampler (workers/consistency_sampler.py): cached keys it compares with the database
    # per second (each one a Redis GET and one read query; rechecks of a mismatch count too).
    sampler_rate: float = Field(default=5.0, gt=0, le=1000)
    # A mismatch that has not healed this long after the sampler first saw it is stale (nothing is on its
    # way to fix it); one that heals sooner was late (an invalidation in flight).
    sampler_stale_after_seconds: float = Field(default=10.0, gt=0, le=3600)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    # Which table's changes delete which cache keys (citycache/rules.py); relative to the working
    # directory (the clone, or the app's directory on a VM and in the image).
    invalidation_rules: str = Field(default="invalidation.toml", min_length=1)
    # A copy of cached countries in each API process, dropped by Redis' invalidation pushes
    # (citycache/read/near_cache.py); off: every hit is a Redis GET.
    near_cache_enabled: bool = True
    # The most each API process holds in its near cache, in bytes (least recently used go first).
    near_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # prometheus_client's own variable: where every process writes its samples (citycache/runtime/metrics.py).
    prometheus_multiproc_dir: str = Field(default=".run/metrics", min_length=1)
    # Where supervisord writes each program's log (<dir>/<program>.log) and gunicorn the access log
    # (<dir>/access.log, reopened on SIGUSR1); when a program's log passes
    # LOG_FILE_MAX_BYTES (supervisord's size syntax: 50MB; 0 never rotates) and how many old ones it keeps.
    log_dir: str = Field(default=".run/log", min_length=1)
    log_file_max_bytes: str = Field(default="50MB", pattern="^[0-9]+(KB|MB|GB)?$")
    log_file_backups: int = Field(default=10, ge=0)


class SettingsError(SystemExit):
    """A bad setting stops the process with one line that names it."""


@functools.cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None


def shell_exports(settings: Settings) -> str:
    """The settings the ops scripts need (ports, credentials), as shell `export` lines to `eval`."""
    pg, redis_url = urlsplit(settings.database_url), urlsplit(settings.redis_url)
    kafka_host, _, kafka_port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
    s3_host, _, s3_port = settings.s3_endpoint.rpartition(":")
    values = {
        "PG_HOST": pg.hostname or "localhost",
        "PG_PORT": _port("DATABASE_URL", lambda: pg.port, 5432),
        # libpq percent-decodes a URI's user, password and database: the server must get the same.
        "PG_USER": unquote(pg.username or "") or "postgres",
        "PG_PASSWORD": unquote(pg.password or ""),
        "PG_DATABASE": unquote(pg.path.lstrip("/")) or "postgres",
        "REDIS_PORT": _port("REDIS_URL", lambda: redis_url.port, 6379),
        "REDIS_CLUSTER": "true" if settings.redis_cluster else "false",
        "KAFKA_HOST": kafka_host,
        "KAFKA_PORT": _port("KAFKA_BOOTSTRAP_SERVERS", lambda: int(kafka_port), None),
        "KAFKA_BROKERS": settings.kafka_brokers,
        "S3_HOST": s3_host,
        "S3_PORT": _port("S3_ENDPOINT", lambda: int(s3_port), None),
        "S3_ACCESS_KEY": settings.s3_access_key,
        "S3_SECRET_KEY": settings.s3_secret_key,
        "S3_BUCKET": settings.s3_bucket,
        "DATABASE_URL": settings.database_url,
    }
    # Quoted for the shell: a value is data, whatever quotes, $() or spaces it holds.
    return "\n".join(f"export {name}={shlex.quote(str(value))}" for name, value in values.items())


def _port(name: str, read, default: int | None) -> int:
    """A setting's port as a number, or the one-line SettingsError naming the setting."""
    try:
        port = read()
    except ValueError:
        port = None
    port = default if port is None else port
    if port is None or not 0 < port < 65536:
        raise SettingsError(f"invalid settings: {name}: no valid port in it")
    return port


def supervisord_exports(settings: Settings) -> str:
    """What supervisord.conf expands (%(ENV_LOG_DIR)s...), as `export` lines; LOG_DIR made absolute."""
    values = {
        "LOG_DIR": os.path.abspath(settings.log_dir),
        "LOG_FILE_MAX_BYTES": settings.log_file_max_bytes,
        "LOG_FILE_BACKUPS": settings.log_file_backups,
    }
    return "\n".join(f"export {name}={shlex.quote(str(value))}" for name, value in values.items())


if __name__ == "__main__":
    # `python -m citycache.settings` prints the exports the ops scripts source; with --supervisord,
    # those the launchers of supervisord source.
    settings = get_settings()
    print(supervisord_exports(settings) if sys.argv[1:] == ["--supervisord"] else shell_exports(settings))
    sys.exit(0)
