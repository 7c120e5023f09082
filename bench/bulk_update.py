"""4. One UPDATE of 100,000 rows: notify mode's statement triggers (rendered from a rule with city's two
keys), the seed's row trigger and logical mode against no capture.

Copies of the city table (rows cycled from city up to the size), timed in rotating order, each
vacuumed before its run so that every UPDATE starts from the same kind of pages. Logical mode's copy is
timed with the stack switched to logical mode (bench.modes) and published to its listener; after each
of its runs the slot is awaited past the change, so one run's decoding does not overlap the next.
"""
from __future__ import annotations

import time

from bench.common import Figure, Sizes, median, pg_conn
from bench.modes import capture_mode, time_logical_beside_none
from bench.tables import city_copies

TARGET = 1.05


def timed_update(cur, table: str) -> float:
    cur.execute(f"VACUUM {table}")
    started = time.perf_counter()
    cur.execute(f"UPDATE {table} SET population = population + 1")
    return time.perf_counter() - started


def bench(sizes: Sizes) -> Figure:
    timings = {"none": [], "notify": [], "seed_row": [], "logical": [], "none_beside_logical": []}
    with city_copies("bench_bulk", sizes.bulk_rows, variants=("none", "notify", "seed_row", "logical")) as \
            (tables, rules), pg_conn(application_name="bench-bulk") as conn, conn.cursor() as cur:
        order = ["none", "notify", "seed_row"]
        with capture_mode("notify", rules["notify"]):
            for repeat in range(sizes.bulk_repeats + 1):  # the first round warms the caches, not counted
                for variant in order[repeat % 3:] + order[:repeat % 3]:
                    elapsed = timed_update(cur, tables[variant])
                    if repeat:
                        timings[variant].append(elapsed)
        with capture_mode("logical", rules["logical"]):
            time_logical_beside_none(conn, cur, tables, timed_update, sizes.bulk_repeats, timings)
    m = {variant: median(values) for variant, values in timings.items()}
    ratios = {variant: m[variant] / m["none"] for variant in ("notify", "seed_row", "logical")}
    ratios["logical_vs_none_same_phase"] = m["logical"] / m["none_beside_logical"]
    return Figure(
        4, "bulk UPDATE vs no capture: logical mode", round(ratios["logical"], 3), "x no capture",
        f"<= {TARGET} logical", ratios["logical"] <= TARGET,
        details={"rows": sizes.bulk_rows, "repeats": sizes.bulk_repeats,
                 "median_s": {k: round(v, 4) for k, v in m.items()},
                 "ratios": {k: round(v, 3) for k, v in ratios.items()}, "runs_s": timings},
        note=f"{sizes.bulk_rows} rows: none {m['none'] * 1000:.0f} ms, logical {m['logical'] * 1000:.0f} ms "
             f"({ratios['logical_vs_none_same_phase']:.2f}x none timed beside it with the slot active), "
             f"notify {m['notify'] * 1000:.0f} ms ({ratios['notify']:.2f}x), seed row trigger "
             f"{m['seed_row'] * 1000:.0f} ms ({ratios['seed_row']:.2f}x)")
