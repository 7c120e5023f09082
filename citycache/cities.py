"""The cities of one country as the API sends them: the query and the JSON bytes cached in Redis."""
from __future__ import annotations

import json

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


def is_empty(rendered: bytes) -> bool:
    return rendered == b"[]"
