"""Redis keyspace notifications on our own Redis: when each cache key was deleted."""
from __future__ import annotations

import threading
import time

from citycache.clients import redis_client
from citycache.keys import code_from_cache_key, cache_key
from citycache.settings import get_settings


class DelWatch:
    """Records (t, code) for every DEL of cities_<code> matching `pattern_code` (a glob like 'QZ*')."""

    def __init__(self, pattern_code: str, rearm: bool = False) -> None:
        self.rearm = rearm  # set the marker again after each DEL, so the next DEL is seen too
        self.redis = redis_client(get_settings(), timeout=10)
        self.db = self.redis.connection_pool.connection_kwargs.get("db", 0)
        self.previous = self.redis.config_get("notify-keyspace-events")["notify-keyspace-events"]
        # K: keyspace channel, g: generic commands (DEL among them). Restored on stop().
        self.redis.config_set("notify-keyspace-events", "Kg")
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.prefix = f"__keyspace@{self.db}__:"
        self.pubsub.psubscribe(self.prefix + cache_key(pattern_code))
        self.dels: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="del-watch", daemon=True)

    def start(self) -> "DelWatch":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["data"] == b"del":
                now = time.time()
                channel = message["channel"].decode()
                key = channel[len(self.prefix):]
                self.dels.append((now, code_from_cache_key(key)))
                if self.rearm:
                    self.redis.set(key, b"bench marker", ex=60)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.pubsub.close()
        self.redis.config_set("notify-keyspace-events", self.previous)
        self.redis.close()
