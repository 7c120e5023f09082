"""Worker heartbeats in Redis: `heartbeat:<worker>:<host>:<pid>` holds the time of the last beat.

One key per running instance: several cleaners may share a consumer group, and one stopping (which
deletes its own key) must not make the others look dead. A worker is alive while any of its
instances' keys is.

A worker beats from its loop every BEAT_SECONDS at most; the key lives TTL_SECONDS, twice the
longest a live worker can be silent (citycache/runtime/timing.py derives both), so an expired key means the
worker is dead or stuck. A clean stop deletes the key at once.
"""
from __future__ import annotations

import logging
import os
import socket
import time

import redis

from citycache.runtime import timing

log = logging.getLogger(__name__)

WORKERS = ("pg_listener", "kafka_cleaner", "consistency_sampler")
# Without these no invalidation reaches Redis, so /health (readiness) fails on them. The sampler only
# measures: its absence is reported (and alerted on), never a reason to take the API out of service.
INVALIDATING_WORKERS = ("pg_listener", "kafka_cleaner")
KEY_PREFIX = "heartbeat:"
TTL_SECONDS = timing.HEARTBEAT_TTL_SECONDS
BEAT_SECONDS = timing.BEAT_SECONDS


def heartbeat_key(worker: str, instance: str | None = None) -> str:
    """This process's key for `worker` (or another instance's, given its `host:pid`)."""
    return f"{KEY_PREFIX}{worker}:{instance or f'{socket.gethostname()}:{os.getpid()}'}"


def _instances_pattern(worker: str) -> str:
    return f"{KEY_PREFIX}{worker}:*"


class Heartbeat:
    def __init__(self, client: redis.Redis, worker: str) -> None:
        self.client, self.key = client, heartbeat_key(worker)
        self._next = 0.0

    def beat(self) -> None:
        """Record "alive" unless done recently; a Redis outage must never stop the worker's loop."""
        now = time.monotonic()
        if now < self._next:
            return
        try:
            self.client.set(self.key, repr(time.time()), ex=TTL_SECONDS)
            self._next = now + BEAT_SECONDS
        except redis.RedisError as exc:
            self._next = now + BEAT_SECONDS
            log.debug("heartbeat not written", extra={"error": str(exc)})

    def stop(self) -> None:
        try:
            self.client.delete(self.key)
        except redis.RedisError:
            pass  # it expires on its own


def ages(client: redis.Redis, now: float | None = None) -> dict[str, float | None]:
    """Seconds since each worker's freshest beat, over its instances; None when no instance's key is
    left (all dead, stopped or stuck)."""
    now = time.time() if now is None else now
    result: dict[str, float | None] = {}
    for worker in WORKERS:
        keys = list(client.scan_iter(match=_instances_pattern(worker), count=100))
        beats = [float(value) for value in _values(client, keys) if value is not None]
        result[worker] = round(max(0.0, now - max(beats)), 3) if beats else None
    return result


def _values(client: redis.Redis, keys: list) -> list:
    """MGET; in a Redis Cluster the instances' keys lie in different slots, so one node at a time."""
    if not keys:
        return []
    many = getattr(client, "mget_nonatomic", None)
    return many(keys) if many is not None else client.mget(keys)
