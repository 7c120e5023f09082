"""Rows of city under the benchmarks' own codes (QZA..QZZ): added for a run, removed after it."""
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
