"""Feeds a near cache with Redis' invalidations (server-assisted client-side caching, Redis >= 6); the
consistency sampler hears which keys just changed through the same kind of connection (`TrackedNode`).

One connection per node does it all, RESP2: it asks for its own id, turns tracking on in broadcast
mode for every rule's prefix (`Rules.tracking_prefixes`: where one starts another, the shorter) with
the invalidations redirected to itself, and subscribes to `__redis__:invalidate`. Redis then pushes
the name of every key under them that is written, deleted, expired or evicted, whoever changed it.
One connection rather than a tracking connection and a separate subscriber: if they were two, the
tracking one could die while the subscriber lives on, hearing nothing. Here the push stops only
when the connection does, and that empties the cache.

A plain Redis is one node. On a Redis Cluster tracking is per node, so there is one such connection
at every primary of the cluster's view (citycache/read/topology.py); the near cache is live only while
all of them are up and the view has not changed. Losing any one, or any change of the view, empties
the near cache and bypasses it until tracking is on again at every primary.

redis-py's own client-side cache needs Redis 7.4; Debian 12 ships 7.0, hence the raw commands.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import time

import redis

from citycache.read.near_cache import NearCache
from citycache.read.topology import (PLAIN, PLAIN_NODE, ClusterTopology, Node, TopologyChanged, TopologyWatch, View,
                                     connection)
from citycache.runtime import metrics

log = logging.getLogger(__name__)
CHANNEL = b"__redis__:invalidate"
# The name these connections show in CLIENT LIST (the pid tells the gunicorn workers apart).
NAME_PREFIX = "citycache-near-"


class TrackedNode:
    """One node's tracking connection, which is its own redirect target and subscriber. `node` is
    PLAIN_NODE for the plain Redis of `url`."""

    def __init__(self, url: str, node: Node, prefixes: tuple[str, ...], *, name: str | None = None,
                 ping_seconds: float = 1.0, timeout: float = 2.0):
        self.node, self.ping_seconds, self.timeout = node, ping_seconds, timeout
        self.conn = connection(url, node.address, timeout=timeout)
        try:
            self.conn.connect()
            if node.node_id and self._call("CLUSTER", "MYID").decode() != node.node_id:
                raise TopologyChanged(f"{node.address} is no longer node {node.node_id}")
            self.client_id = int(self._call("CLIENT", "ID"))
            self._call("CLIENT", "SETNAME", name or f"{NAME_PREFIX}{os.getpid()}")
            words = [word for prefix in prefixes for word in ("PREFIX", prefix)]
            self._call("CLIENT", "TRACKING", "ON", "REDIRECT", self.client_id, "BCAST", *words)
            self.conn.send_command("SUBSCRIBE", CHANNEL)
            reply = self.conn.read_response()
            if not (isinstance(reply, list) and reply[0] == b"subscribe"):
                raise redis.ConnectionError(f"unexpected reply to SUBSCRIBE: {reply!r}")
        except BaseException:
            self.conn.disconnect()
            raise
        self.pinged_at: float | None = None
        self.next_ping = time.monotonic() + ping_seconds

    def _call(self, *args):
        self.conn.send_command(*args)
        return self.conn.read_response()

    def socket(self):
        return self.conn._sock  # redis-py keeps the socket there; select() needs it

    def ping_if_due(self, now: float) -> None:
        """A PING each `ping_seconds` that must be answered within `timeout`: a connection that went
        silent (a partition, a frozen server) counts as lost, not only one that was closed."""
        if self.pinged_at is None and now >= self.next_ping:
            self.conn.send_command("PING")
            self.pinged_at = now
        if self.pinged_at is not None and now - self.pinged_at > self.timeout:
            raise redis.TimeoutError(f"no answer to PING on the tracking connection to {self.node.address or 'Redis'}")

    def pushes(self) -> list[list[str] | None]:
        """Every push that has arrived: each a list of key names, or None for a flush of the whole
        database (raises ConnectionError when the connection is gone)."""
        found = []
        while self.conn.can_read(timeout=0):
            message = self.conn.read_response()
            kind = message[0]
            if kind == b"message" and message[1] == CHANNEL:
                keys = message[2]
                found.append(None if keys is None else [k.decode() for k in keys])
            elif kind == b"pong":
                self.pinged_at, self.next_ping = None, time.monotonic() + self.ping_seconds
        return found

    def drain(self, near: NearCache) -> None:
        """Apply every push that has arrived to `near`."""
        for keys in self.pushes():
            near.invalidate(keys)

    def poll(self, wait: float) -> list[list[str] | None]:
        """The pushes that arrive within `wait` seconds (all that are waiting, once one came)."""
        self.ping_if_due(time.monotonic())
        if self.socket() is None:
            raise redis.ConnectionError("the tracking connection closed")
        select.select([self.socket()], [], [], wait)
        return self.pushes()

    def close(self) -> None:
        self.conn.disconnect()


class InvalidationListener:
    """A daemon thread that keeps tracking on at every node and applies the pushes to `near`."""

    def __init__(self, redis_url: str, near: NearCache, prefixes: tuple[str, ...], *, cluster: bool = False,
                 ping_seconds: float = 1.0, timeout: float = 2.0, retry_min: float = 0.05, retry_max: float = 1.0,
                 topology_seconds: float = 1.0):
        self.redis_url = redis_url
        self.near = near
        self.prefixes = prefixes
        self.ping_seconds = ping_seconds
        self.timeout = timeout
        self.retry_min, self.retry_max = retry_min, retry_max
        self.topology = ClusterTopology(redis_url, timeout=timeout) if cluster else None
        self.topology_seconds = topology_seconds
        self.client_ids: dict[str, int] = {}  # node address ("" for a plain Redis) -> its connection's id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._starting = threading.Lock()

    @property
    def client_id(self) -> int | None:
        """The tracking connection's id on a plain Redis."""
        return self.client_ids.get("")

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
            nodes: list[TrackedNode] = []
            try:
                view = self._view()
                for node in view.to_track():
                    nodes.append(TrackedNode(self.redis_url, node, self.prefixes, ping_seconds=self.ping_seconds,
                                             timeout=self.timeout))
                # Tracking is on at every primary of `view`; if the view moved meanwhile, a primary
                # may have been missed: start again.
                if self._view() != view:
                    raise TopologyChanged("the cluster's topology changed while tracking was turned on")
                self.client_ids = {n.node.address: n.client_id for n in nodes}
                self.near.connected()
                log.info("near cache tracking on", extra={"client_ids": self.client_ids})
                pause = self.retry_min
                self._listen(nodes, view)
            except (redis.RedisError, OSError) as exc:
                log.warning("near cache tracking lost, cache flushed and bypassed",
                            extra={"error": f"{type(exc).__name__}: {exc}", "retry_s": pause})
            except Exception:  # a reply we did not expect: the loop goes on, the cache empty meanwhile
                log.exception("near cache tracking failed, cache flushed and bypassed")
            finally:
                self.near.lost()
                metrics.NEAR_LOST.inc()
                for node in nodes:
                    node.close()
                if self.topology is not None:
                    self.topology.close()
            self._stop.wait(pause)
            pause = min(pause * 2, self.retry_max)

    def _view(self) -> View:
        return PLAIN if self.topology is None else self.topology.read()

    def _listen(self, nodes: list[TrackedNode], view: View) -> None:
        watch = None if self.topology is None else TopologyWatch(
            self.topology, view, every=self.topology_seconds, timeout=self.timeout)
        while not self._stop.is_set():
            now = time.monotonic()
            for node in nodes:
                node.ping_if_due(now)
            if watch is not None:
                watch.step(now)
            sockets = [n.socket() for n in nodes] + ([watch.socket()] if watch is not None else [])
            if None in sockets:
                raise redis.ConnectionError("a tracking connection closed")
            select.select(sockets, [], [], 0.2)
            for node in nodes:
                node.drain(self.near)
            if watch is not None:
                watch.step(time.monotonic())
