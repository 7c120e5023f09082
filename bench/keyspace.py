"""Redis keyspace notifications on our own Redis: when each cache key was deleted."""
from __future__ import annotations

import threading
import time

import redis
from redis.cluster import RedisCluster

from citycache.runtime.clients import redis_client
from citycache.read.cities import CITIES
from citycache.settings import get_settings


class DelWatch:
    """Records (t, code) for every DEL of <prefix><code> matching `pattern_code` (a glob like 'QZ*'),
    the prefix being a resource's (cities_ by default; country_ for /countries).

    Keyspace notifications are local to a node: in a Redis Cluster every primary is watched."""

    def __init__(self, pattern_code: str, rearm: bool = False, prefix: str = CITIES.template.prefix) -> None:
        self.key_prefix = prefix
        self.rearm = rearm  # set the marker again after each DEL, so the next DEL is seen too
        self.redis = redis_client(get_settings(), timeout=10)
        if isinstance(self.redis, RedisCluster):
            self.nodes = [redis.Redis(host=n.host, port=n.port, socket_timeout=10) for n in self.redis.get_primaries()]
            self.db = 0
        else:
            self.nodes = [self.redis]
            self.db = self.redis.connection_pool.connection_kwargs.get("db", 0)
        self.previous = [node.config_get("notify-keyspace-events")["notify-keyspace-events"] for node in self.nodes]
        self.prefix = f"__keyspace@{self.db}__:"
        self.pubsubs = []
        for node in self.nodes:
            # K: keyspace channel, g: generic commands (DEL among them). Restored on stop().
            node.config_set("notify-keyspace-events", "Kg")
            pubsub = node.pubsub(ignore_subscribe_messages=True)
            pubsub.psubscribe(self.prefix + self.key_prefix + pattern_code)
            self.pubsubs.append(pubsub)
        self.dels: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="del-watch", daemon=True)

    def start(self) -> "DelWatch":
        self._thread.start()
        return self

    def _run(self) -> None:
        single = len(self.pubsubs) == 1
        while not self._stop.is_set():
            got = False
            for pubsub in self.pubsubs:
                # One node: block on it. Several: look at each in turn (a message already buffered
                # by redis-py would not make its socket readable, so no select() over them).
                message = pubsub.get_message(timeout=0.1 if single else 0.0)
                if message and message["data"] == b"del":
                    got = True
                    now = time.time()
                    channel = message["channel"].decode()
                    key = channel[len(self.prefix):]
                    self.dels.append((now, key[len(self.key_prefix):]))
                    if self.rearm:
                        self.redis.set(key, b"bench marker", ex=60)
            if not single and not got:
                time.sleep(0.0005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for pubsub, node, previous in zip(self.pubsubs, self.nodes, self.previous):
            pubsub.close()
            node.config_set("notify-keyspace-events", previous)
            node.close()
        self.redis.close()

