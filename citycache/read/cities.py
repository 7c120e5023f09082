"""The cities of one country, as GET /cities/<code> sends them (cached under `cities_<CODE>`)."""
from __future__ import annotations

import json

from citycache.read.resource import Resource

# Deterministic order: most populous first, ties by name in byte order (independent of the locale).
CITIES_SQL = (
    "SELECT name, population FROM city WHERE countrycode = %s"
    ' ORDER BY population DESC, name COLLATE "C"'
)


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


def load(conn, code: str) -> bytes:
    return render_cities(fetch_cities(conn, code))


CITIES = Resource("cities", "cities_{countrycode}", load, missing=b"[]")
key = CITIES.key
