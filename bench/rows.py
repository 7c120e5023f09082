"""Rows of city (and country) under the benchmarks' own codes (QZA..QZZ): added for a run, removed after it."""
from __future__ import annotations

import contextlib

from bench.common import BENCH_CODES, pg_conn

ROWS_PER_CODE = 8


@contextlib.contextmanager
def bench_rows():
    """Yields {id: code} of the bench rows; deletes them (and so invalidates their keys) afterwards."""
    with pg_conn() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM city WHERE countrycode = ANY(%s)", (BENCH_CODES,))
        cur.execute(
            "INSERT INTO city (name, countrycode, district, population)"
            " SELECT 'Bench ' || code || ' ' || n, code, 'Bench', 1000 * n"
            " FROM unnest(%s::text[]) AS code, generate_series(1, %s) AS n RETURNING id, countrycode",
            (BENCH_CODES, ROWS_PER_CODE))
        rows = dict(cur.fetchall())
        try:
            yield rows
        finally:
            cur.execute("DELETE FROM city WHERE countrycode = ANY(%s)", (BENCH_CODES,))


@contextlib.contextmanager
def bench_countries(rows: dict[int, str]):
    """A country row per bench code, its capital the code's first bench city; yields {code: capital id}."""
    capitals = {}
    for row_id, code in sorted(rows.items()):
        capitals.setdefault(code, row_id)
    with pg_conn() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM country WHERE code = ANY(%s)", (BENCH_CODES,))
        cur.execute("INSERT INTO country (code, name, continent, population, capital, code2)"
                    " SELECT code, 'Bench ' || code, 'Europe', 1000, capital, 'QZ'"
                    " FROM unnest(%s::text[], %s::int[]) AS k(code, capital)",
                    (list(capitals), list(capitals.values())))
        try:
            yield capitals
        finally:
            cur.execute("DELETE FROM country WHERE code = ANY(%s)", (BENCH_CODES,))
