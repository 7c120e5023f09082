"""Does the cache agree with the database? (In the spirit of Meta's Polaris.)

Every cached `cities_<CODE>` value is compared with what the API would render from the database
now. A key that changes or vanishes while it is being checked is an invalidation in flight, not a
mismatch, so the check can run against live traffic; on a quiet system it is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis

from citycache.read.cities import Cities, fetch_cities, render_cities
from citycache.keys import CACHE_KEY_PATTERN, code_from_cache_key


@dataclass(frozen=True)
class Mismatch:
    code: str
    cached: bytes
    database: bytes

    def describe(self, width: int = 120) -> str:
        return (f"cities_{self.code}: cache {self.cached[:width]!r}\n"
                f"{' ' * (len(self.code) + 9)}   db {self.database[:width]!r}")


def find_mismatches(client: redis.Redis, conn) -> tuple[list[Mismatch], int]:
    """(mismatches, keys checked) over every cached country."""
    mismatches, checked = [], 0
    for key in client.scan_iter(match=CACHE_KEY_PATTERN, count=500):
        cached = client.get(key)
        if cached is None:
            continue
        code = code_from_cache_key(key)
        fresh = Cities(render_cities(fetch_cities(conn, code)))
        found = Cities.from_cached(cached)
        checked += 1
        # The stored ETag counts too: a wrong one would answer 304 to a client holding other cities.
        if (found.data, found.etag) != (fresh.data, fresh.etag) and client.get(key) == cached:
            mismatches.append(Mismatch(code, found.data, fresh.data))
    return mismatches, checked
