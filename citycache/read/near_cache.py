"""A near cache: copies of cached values in the API process, dropped by Redis' invalidation pushes.

The store only; citycache/read/tracking.py keeps the connection that feeds it. Three rules keep it from
serving what Redis no longer holds:
- no stale fill: a reader takes a ticket (the key's version) before its GET and may store what the GET
  returned only if no invalidation of that key, and no loss of contact, came in between;
- lost contact means empty: while the invalidation connection is down the cache is flushed and
  bypassed, and tickets taken before a loss or a reconnect are void;
- bounded memory: least recently used entries are evicted to stay under `max_bytes`.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from citycache.runtime import metrics

# Versions are kept per key that was invalidated or filled; past this many the table is cleared and the
# epoch moves, which voids the tickets in flight (a rare, safe refusal) and keeps the table bounded.
MAX_VERSIONS = 4096


class NearCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._versions: dict[str, int] = {}
        self._epoch = 0
        self._live = False  # True only while Redis is known to push this process its invalidations

    @property
    def live(self) -> bool:
        return self._live

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str):
        """The local copy of `key`, or None (also while contact with Redis is lost)."""
        if not self._live:
            metrics.NEAR_BYPASS.inc()
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None:
            metrics.NEAR_MISSES.inc()
            return None
        metrics.NEAR_HITS.inc()
        return entry[0]

    def ticket(self, key: str) -> tuple[int, int] | None:
        """Take before the GET whose answer may be stored; None while contact is lost."""
        if not self._live:
            return None
        with self._lock:
            return self._epoch, self._versions.get(key, 0)

    def fill(self, key: str, ticket: tuple[int, int] | None, value: object, size: int) -> bool:
        """Store `value` unless an invalidation or a loss of contact came after `ticket` was taken."""
        if ticket is None or size > self.max_bytes:
            return False
        with self._lock:
            if not self._live or ticket != (self._epoch, self._versions.get(key, 0)):
                return False
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            evicted = 0
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
                evicted += 1
        if evicted:
            metrics.NEAR_EVICTIONS.inc(evicted)
        return True

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Redis says these keys changed (None: the whole database was flushed)."""
        if keys is None:
            self._flush(live=self._live)
            return
        dropped = 0
        with self._lock:
            for key in keys:
                self._versions[key] = self._versions.get(key, 0) + 1
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= old[1]
                    dropped += 1
            if len(self._versions) > MAX_VERSIONS:
                self._versions.clear()
                self._epoch += 1
        metrics.NEAR_INVALIDATIONS.inc(dropped)

    def connected(self) -> None:
        """Redis pushes this process its invalidations again: start afresh (empty, new epoch)."""
        self._flush(live=True)

    def lost(self) -> None:
        """Contact with Redis is lost: empty now, and bypassed until `connected()`."""
        self._flush(live=False)

    def _flush(self, *, live: bool) -> None:
        with self._lock:
            self._live = live
            self._epoch += 1
            self._entries.clear()
            self._versions.clear()
            self._bytes = 0
