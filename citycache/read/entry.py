"""The cities of one country as the API sends them: the query, the JSON bytes and their ETag, and the
value cached in Redis under `cities_<CODE>` (the ETag, then the bytes)."""
from __future__ import annotations

import hashlib
import json

# Deterministic order: most populous first, ties by name in byte order (independent of the locale).
CITIES_SQL = (
    "SELECT name, population FROM city WHERE countrycode = %s"
    ' ORDER BY population DESC, name COLLATE "C"'
)
# W/"<24 hex digits>": the cached value starts with it, so a hit does not hash the cities again.
_ETAG_PREFIX = b'W/"'
_ETAG_LENGTH = len(_ETAG_PREFIX) + 24 + 1


def fetch_cities(conn, code: str) -> list[tuple[str, int]]:
    with conn.cursor() as cur:
        cur.execute(CITIES_SQL, (code,))
        return cur.fetchall()


def render_cities(rows: list[tuple[str, int]]) -> bytes:
    """The `data` array exactly as it goes on the wire, so a cache hit is sent without re-encoding."""
    return json.dumps(
        [{"name": name, "population": population} for name, population in rows],
        ensure_ascii=False, separators=(",", ":"),
    ).encode()


def etag_of(data: bytes) -> str:
    """A weak ETag of the cities themselves: the same rows from the cache or the database (the body's
    "source" differs) are the same entity."""
    return 'W/"%s"' % hashlib.blake2b(data, digest_size=12).hexdigest()


def is_empty(rendered: bytes) -> bool:
    return rendered == b"[]"


class Cities:
    """Rendered cities with their ETag; the body of a cache hit is built once per object, not per request."""

    __slots__ = ("data", "etag", "_hit_body")

    def __init__(self, data: bytes, etag: str | None = None):
        self.data = data
        self.etag = etag or etag_of(data)
        self._hit_body: bytes | None = None

    @classmethod
    def from_cached(cls, value: bytes) -> Cities:
        """Parse a Redis value; one without the ETag (from an older version) gets it computed."""
        if value[:3] == _ETAG_PREFIX and value[_ETAG_LENGTH - 1:_ETAG_LENGTH] == b'"':
            return cls(value[_ETAG_LENGTH:], value[:_ETAG_LENGTH].decode())
        return cls(value)

    def cached(self) -> bytes:
        """The value stored under `cities_<CODE>`."""
        return self.etag.encode() + self.data

    def body(self, source: str) -> bytes:
        """The response body of GET /cities/<code>: {"source": ..., "data": [...]}."""
        if source != "cache":
            return b'{"source":"%s","data":%s}' % (source.encode(), self.data)
        if self._hit_body is None:
            self._hit_body = b'{"source":"cache","data":%s}' % self.data
        return self._hit_body

    @property
    def size(self) -> int:
        """Bytes held, roughly: the data, the hit body once built, the ETag and the objects."""
        return 2 * len(self.data) + 200
