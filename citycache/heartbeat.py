"""Worker heartbeats in Redis: `heartbeat:<worker>` holds the time of the last beat and expires.

A worker beats from its loop every BEAT_SECONDS at most; the key lives TTL_SECONDS, longer than any
wait in the loops (pg_listener's select <= 5 s plus a reconnect, kafka_cleaner's poll 0.5 s), so an
expired key means the worker is dead or stuck. A clean stop deletes the key at once.
"""
from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)

WORKERS = ("pg_listener", "kafka_cleaner")
KEY_PREFIX = "heartbeat:"
TTL_SECONDS = 20
BEAT_SECONDS = 2.0


def heartbeat_key(worker: str) -> str:
    return KEY_PREFIX + worker


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
    """Seconds since each worker's last beat; None when its key is gone (dead, stopped or stuck)."""
    now = time.time() if now is None else now
    values = client.mget([heartbeat_key(worker) for worker in WORKERS])
    return {worker: None if value is None else round(max(0.0, now - float(value)), 3)
            for worker, value in zip(WORKERS, values)}
