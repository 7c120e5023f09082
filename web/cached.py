"""The cache-aside path every resource's route shares: the near cache, else Redis with leases (one
reader fills, no stale set), else the database; then the answer with its weak ETag, a 304 to a
matching If-None-Match, a 400 for a bad code and a 404 for nothing under it."""
from __future__ import annotations

import logging

import redis
from flask import Response, request

from citycache.read.codes import BadCode, normalize_code
from citycache.read.entry import Entry
from citycache.read.resource import Resource
from citycache.runtime.metrics import cache_lookups
from web.errors import json_error
from web.resources import get_resources

log = logging.getLogger(__name__)
# Clients may keep the answer but must ask again each time: an invalidation can come any moment.
CACHE_CONTROL = "no-cache"


def read(resource: Resource, code: str) -> tuple[Entry, str]:
    """The entry of a normalized code and where it came from ("cache" or "db")."""
    resources = get_resources()
    hits, misses = cache_lookups(resource.name)
    near, key = resources.near_cache(), resource.key(code)
    if near is not None:
        entry = near.get(key)
        if entry is not None:
            hits.inc()
            return entry, "cache"
        ticket = near.ticket(key)  # before the GET: an invalidation from now on voids the fill

    def load() -> bytes:
        return resources.query(lambda conn: Entry(resource.load(conn, code)).cached())

    try:
        value, source = resources.cache.read_through(key, load)
    except redis.RedisError as exc:
        # The cache is an optimisation: without Redis, answer from the database.
        log.warning("redis unavailable, serving from the database", extra={"error": str(exc)})
        value, source = load(), "db"
    entry = Entry.from_cached(value)
    if source == "cache":
        hits.inc()
        if near is not None:
            near.fill(key, ticket, entry, entry.size)
    else:
        # Not kept near: our own SET is about to come back as an invalidation; the next hit fills.
        misses.inc()
        log.info("cache miss, answered from the database", extra={"key": key})
    return entry, source


def answer(resource: Resource, raw_code: str, not_found: str):
    """The route's whole answer for `raw_code`."""
    try:
        code = normalize_code(raw_code)
    except BadCode as exc:
        return json_error(400, str(exc))
    entry, source = read(resource, code)
    if entry.data == resource.missing:
        return json_error(404, not_found.format(code=code))
    headers = {"ETag": entry.etag, "Cache-Control": CACHE_CONTROL}
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(entry.etag[3:-1]):
        return Response(status=304, headers=headers)
    # The data is cached exactly as sent: a hit is not decoded and re-encoded.
    return Response(entry.body(source), mimetype="application/json", headers=headers)
