"""4. One UPDATE of 100,000 rows: our statement-level triggers and the seed's row trigger against none.

Three copies of the city table (rows cycled from city up to the size), timed in rotating order,
each vacuumed before its run so that every UPDATE starts from the same kind of pages.
"""
from __future__ import annotations

import time

from bench.common import Figure, Sizes, median, pg_conn
from bench.tables import city_copies

TARGET = 1.05


def bench(sizes: Sizes) -> Figure:
    timings = {"none": [], "notify": [], "seed_row": []}
    with city_copies("bench_bulk", sizes.bulk_rows) as tables, \
            pg_conn(application_name="bench-bulk") as conn, conn.cursor() as cur:
        order = list(tables)
        for repeat in range(sizes.bulk_repeats + 1):  # the first round warms the caches, not counted
            for variant in order[repeat % 3:] + order[:repeat % 3]:
                cur.execute(f"VACUUM {tables[variant]}")
                started = time.perf_counter()
                cur.execute(f"UPDATE {tables[variant]} SET population = population + 1")
                elapsed = time.perf_counter() - started
                if repeat:
                    timings[variant].append(elapsed)
    none, ours, seed = (median(timings[v]) for v in ("none", "notify", "seed_row"))
    ratio = ours / none
    return Figure(
        4, "bulk UPDATE, statement triggers vs none", round(ratio, 3), "x no trigger", f"<= {TARGET}",
        ratio <= TARGET,
        details={"rows": sizes.bulk_rows, "repeats": sizes.bulk_repeats,
                 "median_s": {"none": round(none, 4), "notify": round(ours, 4), "seed_row": round(seed, 4)},
                 "seed_row_ratio": round(seed / none, 3), "runs_s": timings},
        note=f"{sizes.bulk_rows} rows: none {none * 1000:.0f} ms, ours {ours * 1000:.0f} ms, "
             f"seed row trigger {seed * 1000:.0f} ms ({seed / none:.2f}x)")
