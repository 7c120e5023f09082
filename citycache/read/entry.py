"""A cached value as the API sends it: the data's JSON bytes and their weak ETag. Redis holds the ETag
then the bytes (`W/"<24 hex>"[...]`), so a hit does not hash the data again; a value without the ETag
(from an older version) still reads, with its ETag computed."""
from __future__ import annotations

import hashlib

_ETAG_PREFIX = b'W/"'
_ETAG_LENGTH = len(_ETAG_PREFIX) + 24 + 1


def etag_of(data: bytes) -> str:
    """A weak ETag of the data itself: the same rows from the cache or the database (the body's
    "source" differs) are the same entity."""
    return 'W/"%s"' % hashlib.blake2b(data, digest_size=12).hexdigest()


class Entry:
    """Rendered data with its ETag; the body of a cache hit is built once per object, not per request."""

    __slots__ = ("data", "etag", "_hit_body")

    def __init__(self, data: bytes, etag: str | None = None):
        self.data = data
        self.etag = etag or etag_of(data)
        self._hit_body: bytes | None = None

    @classmethod
    def from_cached(cls, value: bytes) -> Entry:
        """Parse a Redis value; one without the ETag (from an older version) gets it computed."""
        if value[:3] == _ETAG_PREFIX and value[_ETAG_LENGTH - 1:_ETAG_LENGTH] == b'"':
            return cls(value[_ETAG_LENGTH:], value[:_ETAG_LENGTH].decode())
        return cls(value)

    def cached(self) -> bytes:
        """The value stored in Redis."""
        return self.etag.encode() + self.data

    def body(self, source: str) -> bytes:
        """The response body: {"source": ..., "data": ...}."""
        if source != "cache":
            return b'{"source":"%s","data":%s}' % (source.encode(), self.data)
        if self._hit_body is None:
            self._hit_body = b'{"source":"cache","data":%s}' % self.data
        return self._hit_body

    @property
    def size(self) -> int:
        """Bytes held, roughly: the data, the hit body once built, the ETag and the objects."""
        return 2 * len(self.data) + 200
