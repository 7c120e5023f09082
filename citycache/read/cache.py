"""Cache-aside with leases: no stale set, no thundering herd, for every resource's keys.

After Facebook's memcache leases. A reader that misses asks for a lease (a random token kept beside
the key for a few seconds). Only the lease holder queries the database; the others wait briefly for
its value. The holder stores its result only if its lease is still there, checked atomically in
Redis. An invalidation deletes the key and the lease together (citycache/write/deletes.py), so a reader
that read the database before a commit cannot write its old data into the cache after the
invalidation went by.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

import redis

from citycache.rules import lease_key

log = logging.getLogger(__name__)

# KEYS: value, lease. ARGV: token, lease ms. -> {"hit", value} | {"lease", token} | {"wait", ""}
_GET_OR_LEASE = """
local value = redis.call('GET', KEYS[1])
if value then return {'hit', value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'lease', ARGV[1]} end
return {'wait', ''}
"""
# KEYS: value, lease. ARGV: token, value, ttl seconds. -> 1 stored, 0 lease gone (invalidated)
_STORE_IF_LEASED = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""


class LeasedCache:
    def __init__(self, client: redis.Redis, ttl_seconds: int, *, lease_ms: int = 3000,
                 wait_seconds: float = 2.0):
        self.redis = client
        self.ttl_seconds = ttl_seconds
        self.lease_ms = lease_ms
        self.wait_seconds = wait_seconds
        self._get_or_lease = client.register_script(_GET_OR_LEASE)
        self._store_if_leased = client.register_script(_STORE_IF_LEASED)

    def lease(self, key: str) -> tuple[str, bytes]:
        """One atomic step: ("hit", value), ("lease", token) or ("wait", b"")."""
        token = secrets.token_hex(8)
        state, payload = self._get_or_lease(keys=[key, lease_key(key)], args=[token, self.lease_ms])
        return state.decode(), payload

    def store(self, key: str, token: bytes, value: bytes) -> bool:
        stored = self._store_if_leased(keys=[key, lease_key(key)], args=[token, value, self.ttl_seconds])
        return bool(stored)

    def read_through(self, key: str, load: Callable[[], bytes]) -> tuple[bytes, str]:
        """The cached value of `key`, or `load()` filled in by exactly one reader: (value, source)."""
        # Hits are the common case: a plain GET, no lease token or script. Redis copies a value a
        # script returns through Lua, which for the largest countries cost more than the GET itself.
        value = self.redis.get(key)
        if value is not None:
            return value, "cache"
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.002
        while True:
            state, payload = self.lease(key)  # payload: the value on a hit, our token on a lease
            if state == "hit":
                return payload, "cache"
            if state == "lease":
                fresh = load()
                if not self.store(key, payload, fresh):
                    log.info("cache store skipped: invalidated while loading", extra={"key": key})
                return fresh, "db"
            if time.monotonic() >= deadline:
                # The filler is slow or gone: answer from the database rather than fail or wait longer.
                log.warning("lease wait timed out", extra={"key": key})
                return load(), "db"
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
