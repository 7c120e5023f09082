"""GET /cities/<code>: the cities of one country, cache-aside through Redis with leases."""
from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response

from citycache.cities import fetch_cities, is_empty, render_cities
from citycache.keys import BadCode, normalize_code
from web.errors import json_error
from web.resources import get_resources

log = logging.getLogger(__name__)
bp = Blueprint("cities", __name__)


@bp.get("/cities/<code>")
def get_cities(code: str):
    try:
        code = normalize_code(code)
    except BadCode as exc:
        return json_error(400, str(exc))

    resources = get_resources()

    def load() -> bytes:
        return resources.query(lambda conn: render_cities(fetch_cities(conn, code)))

    try:
        data, source = resources.cache.read_through(code, load)
    except redis.RedisError as exc:
        # The cache is an optimisation: without Redis, answer from the database.
        log.warning("redis unavailable, serving from the database", extra={"error": str(exc)})
        data, source = load(), "db"

    if is_empty(data):
        return json_error(404, f"no cities for country code {code}")
    # `data` is cached exactly as sent: a hit is not decoded and re-encoded.
    return Response(b'{"source":"%s","data":%s}' % (source.encode(), data), mimetype="application/json")
