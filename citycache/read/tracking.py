"""Feeds a near cache with Redis' invalidations (server-assisted client-side caching, Redis >= 6); the
consistency sampler hears which keys just changed through the same kind of connection (`Pushes`).

One connection per process does it all, RESP2: it asks for its own id, turns tracking on in
broadcast mode for every rule's prefix (`Rules.tracking_prefixes`: where one starts another, the
shorter) with the invalidations redirected to itself, and subscribes to `__redis__:invalidate`. Redis
then pushes the name of every key under them that is written, deleted, expired or evicted, whoever
changed it. One connection rather than a tracking connection
and a separate subscriber: if they were two, the tracking one could die while the subscriber lives
on, hearing nothing. Here the push stops only when the connection does, and that empties the cache.

redis-py's own client-side cache needs Redis 7.4; Debian 12 ships 7.0, hence the raw commands.
"""
from __future__ import annotations

import logging
import os
import threading
import time

import redis

from citycache.runtime import metrics
from citycache.read.near_cache import NearCache

log = logging.getLogger(__name__)
CHANNEL = b"__redis__:invalidate"
# The name this connection shows in CLIENT LIST (the pid tells the gunicorn workers apart).
NAME_PREFIX = "citycache-near-"


class Pushes:
    """One RESP2 connection with broadcast tracking of `prefixes`, redirected to itself, subscribed to the pushes.

    poll() returns what Redis pushed meanwhile: each push a list of key names, or None for a flush of the
    whole database. A PING every `ping_seconds` must be answered within `timeout`: a connection that went
    silent (a partition, a frozen server) counts as lost, not only one that was closed.
    """

    def __init__(self, redis_url: str, prefixes: tuple[str, ...], name: str, *, timeout: float = 2.0,
                 ping_seconds: float = 1.0) -> None:
        self.redis_url, self.prefixes, self.name = redis_url, prefixes, name
        self.timeout, self.ping_seconds = timeout, ping_seconds
        self.client_id: int | None = None
        self._conn: redis.Connection | None = None
        self._pinged_at: float | None = None
        self._next_ping = 0.0

    def open(self) -> Pushes:
        # RESP2: the invalidations arrive as ordinary pub/sub messages on this connection.
        client = redis.Redis.from_url(self.redis_url, protocol=2, socket_timeout=self.timeout,
                                      socket_connect_timeout=self.timeout)
        conn = self._conn = client.connection_pool.make_connection()
        conn.connect()
        self.client_id = int(self._call("CLIENT", "ID"))
        self._call("CLIENT", "SETNAME", self.name)
        prefixes = [word for prefix in self.prefixes for word in ("PREFIX", prefix)]
        self._call("CLIENT", "TRACKING", "ON", "REDIRECT", self.client_id, "BCAST", *prefixes)
        conn.send_command("SUBSCRIBE", CHANNEL)
        reply = conn.read_response()
        if not (isinstance(reply, list) and reply[0] == b"subscribe"):
            raise redis.ConnectionError(f"unexpected reply to SUBSCRIBE: {reply!r}")
        self._pinged_at, self._next_ping = None, time.monotonic() + self.ping_seconds
        return self

    def _call(self, *args):
        self._conn.send_command(*args)
        return self._conn.read_response()

    def poll(self, wait: float) -> list[list[str] | None]:
        """The pushes that arrive within `wait` seconds (all that are waiting, once one came)."""
        conn, now = self._conn, time.monotonic()
        if self._pinged_at is None and now >= self._next_ping:
            conn.send_command("PING")
            self._pinged_at = now
        if self._pinged_at is not None and now - self._pinged_at > self.timeout:
            raise redis.TimeoutError("no answer to PING on the tracking connection")
        pushes = []
        ready = conn.can_read(timeout=wait)
        while ready:
            message = conn.read_response()
            kind = message[0]
            if kind == b"message" and message[1] == CHANNEL:
                keys = message[2]
                pushes.append(None if keys is None else [k.decode() for k in keys])
            elif kind == b"pong":
                self._pinged_at, self._next_ping = None, time.monotonic() + self.ping_seconds
            ready = conn.can_read(timeout=0)
        return pushes

    def close(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._conn = None


class InvalidationListener:
    """A daemon thread that keeps the tracking connection up and applies its pushes to `near`."""

    def __init__(self, redis_url: str, near: NearCache, prefixes: tuple[str, ...], *, ping_seconds: float = 1.0,
                 timeout: float = 2.0, retry_min: float = 0.05, retry_max: float = 1.0):
        self.redis_url = redis_url
        self.near = near
        self.prefixes = prefixes
        self.ping_seconds = ping_seconds
        self.timeout = timeout
        self.retry_min, self.retry_max = retry_min, retry_max
        self.client_id: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._starting = threading.Lock()

    def ensure_started(self) -> None:
        """Start the thread in this process (after a fork the parent's thread is not there)."""
        if self._pid == os.getpid():
            return
        with self._starting:  # the first requests of a worker arrive on several threads at once
            if self._pid == os.getpid():
                return
            self.near.lost()  # anything copied from a parent process was never tracked here
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="near-cache-invalidations", daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + self.ping_seconds + 1)

    def _run(self) -> None:
        pause = self.retry_min
        while not self._stop.is_set():
            pushes = Pushes(self.redis_url, self.prefixes, f"{NAME_PREFIX}{os.getpid()}", timeout=self.timeout,
                            ping_seconds=self.ping_seconds)
            try:
                pushes.open()
                self.client_id = pushes.client_id
                self.near.connected()
                log.info("near cache tracking on", extra={"client_id": self.client_id})
                pause = self.retry_min
                while not self._stop.is_set():
                    for keys in pushes.poll(0.2):
                        self.near.invalidate(keys)
            except (redis.RedisError, OSError) as exc:
                log.warning("near cache tracking lost, cache flushed and bypassed",
                            extra={"error": f"{type(exc).__name__}: {exc}", "retry_s": pause})
            finally:
                self.near.lost()
                metrics.NEAR_LOST.inc()
                pushes.close()
            self._stop.wait(pause)
            pause = min(pause * 2, self.retry_max)
