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


@dataclass(frozen=True)
class Comparison:
    """One cached key against what the API would render from the database now."""
    key: str
    value: bytes  # as Redis holds it
    cached: Entry
    fresh: Entry

    @property
    def agrees(self) -> bool:
        # The stored ETag counts too: a wrong one would answer 304 to a client holding other data.
        return (self.cached.data, self.cached.etag) == (self.fresh.data, self.fresh.etag)

    def difference(self, shown: int = 300, before: int = 60) -> dict:
        """Both sides for a log line: their data from a little before the first byte that differs, and their ETags."""
        cached, fresh = self.cached.data, self.fresh.data
        at = next((i for i, (a, b) in enumerate(zip(cached, fresh)) if a != b), min(len(cached), len(fresh)))
        start = max(0, at - before)

        def excerpt(data: bytes) -> str:
            text = data[start:start + shown].decode("utf-8", "replace")
            return ("…" if start else "") + text + ("…" if start + shown < len(data) else "")

        return {"differs_at": at, "cached": excerpt(cached), "database": excerpt(fresh),
                "cached_etag": self.cached.etag, "database_etag": self.fresh.etag}


def compare(client: redis.Redis, conn, resource: Resource, key: str) -> Comparison | None:
    """`key` in Redis against the database; None when it is not cached, or not a key of `resource`."""
    code = resource.code_of(key)
    value = client.get(key) if code is not None else None
    if value is None:
        return None
    return Comparison(key, value, Entry.from_cached(value), Entry(resource.load(conn, code)))


def find_mismatches(client: redis.Redis, conn, resources: Iterable[Resource]) -> tuple[list[Mismatch], dict[str, int]]:
    """(mismatches, keys checked per resource) over every cached key of `resources`."""
    mismatches, checked = [], {}
    for resource in resources:
        checked[resource.name] = 0
        for raw in client.scan_iter(match=key_pattern(resource.template.prefix), count=500):
            found = compare(client, conn, resource, raw.decode() if isinstance(raw, bytes) else raw)
            if found is None:
                continue
            checked[resource.name] += 1
            if not found.agrees and client.get(raw) == found.value:
                mismatches.append(Mismatch(found.key, found.cached.data, found.fresh.data))
    return mismatches, checked
