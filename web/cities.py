"""GET /cities/<code>: the cities of one country, cache-aside through Redis with leases; ETag and 304."""
from __future__ import annotations

import hashlib
import logging

import redis
from flask import Blueprint, Response, request

from citycache.cities import fetch_cities, is_empty, render_cities
from citycache.keys import BadCode, normalize_code
from citycache.metrics import CACHE_LOOKUPS
from web.errors import json_error
from web.resources import get_resources

log = logging.getLogger(__name__)
bp = Blueprint("cities", __name__)
# Clients may keep the answer but must ask again each time: an invalidation can come any moment.
CACHE_CONTROL = "no-cache"


def etag_of(data: bytes) -> str:
    """A weak ETag of the cities themselves: the same rows from the cache or the database (the body's
    "source" differs) are the same entity. blake2b of a few kB costs microseconds, even on a hit."""
    return 'W/"%s"' % hashlib.blake2b(data, digest_size=12).hexdigest()


def read_cities(code: str) -> tuple[bytes, str]:
    """The rendered cities of a normalized code and where they came from ("cache" or "db")."""
    resources = get_resources()

    def load() -> bytes:
        return resources.query(lambda conn: render_cities(fetch_cities(conn, code)))

    try:
        data, source = resources.cache.read_through(code, load)
    except redis.RedisError as exc:
        # The cache is an optimisation: without Redis, answer from the database.
        log.warning("redis unavailable, serving from the database", extra={"error": str(exc)})
        data, source = load(), "db"
    CACHE_LOOKUPS.labels("hit" if source == "cache" else "miss").inc()
    if source == "db":
        log.info("cache miss, answered from the database", extra={"code": code})
    return data, source


@bp.get("/cities/<code>")
def get_cities(code: str):
    try:
        code = normalize_code(code)
    except BadCode as exc:
        return json_error(400, str(exc))

    data, source = read_cities(code)
    if is_empty(data):
        return json_error(404, f"no cities for country code {code}")
    etag = etag_of(data)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if request.if_none_match.contains_weak(etag.removeprefix("W/").strip('"')):
        return Response(status=304, headers=headers)
    # `data` is cached exactly as sent: a hit is not decoded and re-encoded.
    return Response(b'{"source":"%s","data":%s}' % (source.encode(), data), mimetype="application/json",
                    headers=headers)
