"""Does the cache agree with the database? (In the spirit of Meta's Polaris.)

Every cached key of every resource the API serves is compared with what the API would render from the
database now. A key that changes or vanishes while it is being checked is an invalidation in flight,
not a mismatch, so the check can run against live traffic; on a quiet system it is exact.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis

from citycache.read.entry import Entry
from citycache.read.resource import Resource
from citycache.rules import key_pattern


@dataclass(frozen=True)
class Mismatch:
    key: str
    cached: bytes
    database: bytes

    def describe(self, width: int = 120) -> str:
        return (f"{self.key}: cache {self.cached[:width]!r}\n"
                f"{' ' * len(self.key)}     db {self.database[:width]!r}")


def find_mismatches(client: redis.Redis, conn, resources: Iterable[Resource]) -> tuple[list[Mismatch], dict[str, int]]:
    """(mismatches, keys checked per resource) over every cached key of `resources`."""
    mismatches, checked = [], {}
    for resource in resources:
        checked[resource.name] = 0
        for raw in client.scan_iter(match=key_pattern(resource.template.prefix), count=500):
            key = raw.decode() if isinstance(raw, bytes) else raw
            code = resource.code_of(key)
            cached = client.get(raw) if code is not None else None
            if cached is None:
                continue
            fresh = Entry(resource.load(conn, code))
            found = Entry.from_cached(cached)
            checked[resource.name] += 1
            # The stored ETag counts too: a wrong one would answer 304 to a client holding other data.
            if (found.data, found.etag) != (fresh.data, fresh.etag) and client.get(raw) == cached:
                mismatches.append(Mismatch(key, found.data, fresh.data))
    return mismatches, checked
