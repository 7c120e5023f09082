"""GET /cities/<code>: the cities of one country, from the near cache or through Redis with leases;
ETag and 304."""
from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, request

from citycache.read.cities import Cities, fetch_cities, is_empty, render_cities
from citycache.keys import BadCode, cache_key, normalize_code
from citycache.runtime.metrics import CACHE_HITS, CACHE_MISSES
from web.errors import json_error
from web.resources import get_resources

log = logging.getLogger(__name__)
bp = Blueprint("cities", __name__)
# Clients may keep the answer but must ask again each time: an invalidation can come any moment.
CACHE_CONTROL = "no-cache"


def read_cities(code: str) -> tuple[Cities, str]:
    """The cities of a normalized code and where they came from ("cache" or "db")."""
    resources = get_resources()
    near, key = resources.near_cache(), cache_key(code)
    if near is not None:
        cities = near.get(key)
        if cities is not None:
            CACHE_HITS.inc()
            return cities, "cache"
        ticket = near.ticket(key)  # before the GET: an invalidation from now on voids the fill

    def load() -> bytes:
        return resources.query(lambda conn: Cities(render_cities(fetch_cities(conn, code))).cached())

    try:
        value, source = resources.cache.read_through(code, load)
    except redis.RedisError as exc:
        # The cache is an optimisation: without Redis, answer from the database.
        log.warning("redis unavailable, serving from the database", extra={"error": str(exc)})
        value, source = load(), "db"
    cities = Cities.from_cached(value)
    if source == "cache":
        CACHE_HITS.inc()
        if near is not None:
            near.fill(key, ticket, cities, cities.size)
    else:
        # Not kept near: our own SET is about to come back as an invalidation; the next hit fills.
        CACHE_MISSES.inc()
        log.info("cache miss, answered from the database", extra={"code": code})
    return cities, source


@bp.get("/cities/<code>")
def get_cities(code: str):
    try:
        code = normalize_code(code)
    except BadCode as exc:
        return json_error(400, str(exc))

    cities, source = read_cities(code)
    if is_empty(cities.data):
        return json_error(404, f"no cities for country code {code}")
    headers = {"ETag": cities.etag, "Cache-Control": CACHE_CONTROL}
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(cities.etag[3:-1]):
        return Response(status=304, headers=headers)
    # The data is cached exactly as sent: a hit is not decoded and re-encoded.
    return Response(cities.body(source), mimetype="application/json", headers=headers)
