"""9. What a rule costs beyond city's single-row UPDATE, in both modes: single-row commits on a copy of
countrylanguage (its rule: one key, on a column of its primary key), and one 10,000-row UPDATE of a
copy of city (its rule: two keys on countrycode), each against no capture; and the outbox rows that
UPDATE writes, which should be its distinct countrycodes, not rows times keys.

countrylanguage: pgbench's 8 clients rename a language and back (the row's key changes, as a real
edit does: no HOT update for any variant), on copies with no capture, notify mode's triggers rendered
from the rule, and logical mode. city: copies rotated as in figure 4, each vacuumed first; logical
mode's slot awaited past each run. Rounds: median of the ratios.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import Figure, Sizes, median, pg_conn
from bench.modes import capture_mode, time_logical_beside_none
from bench.tables import city_copies, drop_copy, render_trigger, rule_text
from bench.write_cost import pgbench
from citycache.write.dbnames import OUTBOX

LANGUAGE_KEYS = ("country_{countrycode}",)
LANGUAGE_ROWS = 20_000
BULK_ROWS = 10_000
CITY_ROWS = 50_000
VARIANTS = ("none", "notify", "logical")


def language_copy(cur, table: str) -> None:
    """countrylanguage's shape, rows cycled from it with a number each (`n`, to pick one by)."""
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"""CREATE TABLE {table} (countrycode char(3) NOT NULL, language text NOT NULL,
                    n integer NOT NULL UNIQUE, PRIMARY KEY (countrycode, language))""")
    cur.execute(f"""INSERT INTO {table}
        SELECT l.countrycode, l.language || '-' || g, g FROM generate_series(1, %s) AS g
        JOIN (SELECT row_number() OVER (ORDER BY countrycode, language) AS i, * FROM countrylanguage) AS l
          ON l.i = 1 + (g - 1) %% (SELECT count(*) FROM countrylanguage)""", (LANGUAGE_ROWS,))
    cur.execute(f"VACUUM ANALYZE {table}")


def language_tps(sizes: Sizes) -> dict[str, list[float]]:
    tables = {variant: f"bench_lang_{variant}" for variant in VARIANTS}
    tps: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    rules = {mode: [rule_text(tables[mode], LANGUAGE_KEYS)] for mode in ("notify", "logical")}
    try:
        with pg_conn(application_name="bench-rules") as conn, conn.cursor() as cur:
            for table in tables.values():
                language_copy(cur, table)
            cur.execute(render_trigger(cur, tables["notify"], LANGUAGE_KEYS))
        with tempfile.TemporaryDirectory() as tmp:
            scripts = {}
            for variant, table in tables.items():
                scripts[variant] = Path(tmp) / f"{variant}.sql"
                scripts[variant].write_text(
                    f"\\set n random(1, {LANGUAGE_ROWS})\n"
                    f"UPDATE {table} SET language = CASE WHEN right(language, 1) = '~' THEN rtrim(language, '~')"
                    f" ELSE language || '~' END WHERE n = :n;\n")
            for round_ in range(sizes.write_rounds):
                with capture_mode("notify", rules["notify"]):
                    for variant in (["none", "notify"] if round_ % 2 == 0 else ["notify", "none"]):
                        tps[variant].append(pgbench(scripts[variant], sizes.write_seconds))
                with capture_mode("logical", rules["logical"]):
                    tps["logical"].append(pgbench(scripts["logical"], sizes.write_seconds))
    finally:
        with pg_conn(application_name="bench-rules") as conn, conn.cursor() as cur:
            for table in tables.values():
                drop_copy(cur, table)
    return tps


def timed_bulk(cur, table: str) -> float:
    cur.execute(f"VACUUM {table}")
    started = time.perf_counter()
    cur.execute(f"UPDATE {table} SET population = population + 1 WHERE id <= {BULK_ROWS}")
    return time.perf_counter() - started


def outbox_rows_of_one_update(cur, table: str) -> tuple[int, int]:
    """(outbox rows the 10,000-row UPDATE wrote, distinct countrycodes among its rows), rolled back."""
    cur.execute("BEGIN")
    try:
        cur.execute(f"UPDATE {table} SET population = population + 1 WHERE id <= {BULK_ROWS}")
        cur.execute(f"SELECT count(*) FROM {OUTBOX} WHERE xmin = pg_current_xact_id()::xid")
        written = cur.fetchone()[0]
        cur.execute(f"SELECT count(DISTINCT countrycode) FROM {table} WHERE id <= {BULK_ROWS}")
        distinct = cur.fetchone()[0]
    finally:
        cur.execute("ROLLBACK")
    return written, distinct


def bulk_times(sizes: Sizes) -> tuple[dict[str, list[float]], tuple[int, int]]:
    times: dict[str, list[float]] = {variant: [] for variant in (*VARIANTS, "none_beside_logical")}
    repeats = max(2, sizes.bulk_repeats)
    with city_copies("bench_rulebulk", CITY_ROWS, variants=VARIANTS) as (tables, rules), \
            pg_conn(application_name="bench-rules") as conn, conn.cursor() as cur:
        with capture_mode("notify", rules["notify"]):
            counted = outbox_rows_of_one_update(cur, tables["notify"])
            for repeat in range(repeats + 1):  # the first round warms the caches, not counted
                for variant in (["none", "notify"] if repeat % 2 == 0 else ["notify", "none"]):
                    elapsed = timed_bulk(cur, tables[variant])
                    if repeat:
                        times[variant].append(elapsed)
        with capture_mode("logical", rules["logical"]):
            time_logical_beside_none(conn, cur, tables, timed_bulk, repeats, times)
    return times, counted


def bench(sizes: Sizes) -> Figure:
    tps = language_tps(sizes)
    language = {mode: median([t / n for t, n in zip(tps[mode], tps["none"])]) for mode in ("notify", "logical")}
    times, (written, distinct) = bulk_times(sizes)
    bulk = {"notify": median(times["notify"]) / median(times["none"]),
            "logical": median(times["logical"]) / median(times["none_beside_logical"])}
    keys_per_row = 2  # city's rule: cities_ and country_
    met = written == distinct
    return Figure(
        9, "rules: countrylanguage single-row commits vs no capture, notify mode", round(language["notify"], 3),
        "x no capture", "report; outbox rows per statement = its distinct key values", met,
        details={"countrylanguage_tps": tps, "countrylanguage_ratio": {k: round(v, 3) for k, v in language.items()},
                 "bulk_10k_s": times, "bulk_10k_ratio": {k: round(v, 3) for k, v in bulk.items()},
                 "outbox_rows_per_statement": written, "distinct_codes": distinct,
                 "rows_times_keys": BULK_ROWS * keys_per_row, "rounds": sizes.write_rounds},
        note=(f"countrylanguage: notify {language['notify']:.2f}x, logical {language['logical']:.2f}x "
              f"(median tps none {median(tps['none']):.0f}); 10,000-row UPDATE of city: notify {bulk['notify']:.2f}x, "
              f"logical {bulk['logical']:.2f}x; its outbox rows {written} = distinct codes {distinct} "
              f"(rows x keys would be {BULK_ROWS * keys_per_row})"))
