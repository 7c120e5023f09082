"""Copies of the city table for write-cost comparisons: none, notify mode's triggers (rendered from a rule
with city's keys, exactly as `schema install` renders city's), the seed's row trigger, the v1 shape, and
one for logical mode (no trigger: its changes are read from the WAL).

The copies that capture are rules of the benchmark's own pg_listener (bench.modes), so their changes
are published as city's are; `RULES` gives them, per mode.
"""
from __future__ import annotations

import contextlib
import json

from bench.common import pg_conn
from citycache import rules as rules_file
from citycache import tables as rule_tables
from citycache.write import dbnames, triggers

# city's keys in the shipped rules: a copy's changes cost the pipeline what city's do.
CITY_KEYS = ("cities_{countrycode}", "country_{countrycode}")
# The seed's trigger, as the project started from: one pg_notify per changed row.
SEED_ROW_TRIGGER = """
CREATE OR REPLACE FUNCTION bench_seed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('city_updates', NEW.countrycode); RETURN NEW; END $$;
CREATE TRIGGER bench_seed_notify AFTER UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION bench_seed_notify();
"""
# The v1 shape, as before issue 8: an outbox row and a NOTIFY in every commit. Its rows name the notify
# copy's rule, so the listener publishes them as it does the notify copy's. Kept to show before and after.
EVERY_COMMIT_NOTIFIES = f"""
CREATE OR REPLACE FUNCTION bench_notify_always() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE changed text;
BEGIN
    FOR changed IN INSERT INTO {dbnames.OUTBOX} (tbl, vals) SELECT TG_ARGV[0], ARRAY[countrycode] FROM (
            SELECT DISTINCT countrycode::text AS countrycode FROM (
                SELECT countrycode FROM old_rows UNION ALL SELECT countrycode FROM new_rows) AS touched) AS d
            RETURNING vals[1] LOOP
        PERFORM pg_notify('{dbnames.CHANNEL}', changed);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_notify_always AFTER UPDATE ON {{table}}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_notify_always('{{notify}}');
"""
VARIANTS = ("none", "notify", "seed_row", "logical", "v1_notify_always")


def table_name(prefix: str, variant: str) -> str:
    return f"{prefix}_{variant}"


def city_copy(cur, table: str, rows: int) -> None:
    """A copy of city's shape with `rows` rows cycled from it (ids 1..rows), and its unique (countrycode,
    id) index, as db/schema.sql makes city's (logical mode uses it as the replica identity)."""
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"""
        CREATE TABLE {table} (
            id integer PRIMARY KEY, name text NOT NULL,
            countrycode char(3) NOT NULL CHECK (countrycode ~ '^[A-Z]{{3}}$'),
            district text NOT NULL DEFAULT '', population integer NOT NULL DEFAULT 0 CHECK (population >= 0))""")
    cur.execute(f"""
        INSERT INTO {table}
        SELECT g, c.name, c.countrycode, c.district, c.population
        FROM generate_series(1, %s) AS g
        JOIN (SELECT row_number() OVER (ORDER BY id) AS n, * FROM city) AS c
          ON c.n = 1 + (g - 1) %% (SELECT count(*) FROM city)""", (rows,))
    cur.execute(f"CREATE UNIQUE INDEX {table}_countrycode_idx ON {table} (countrycode, id)")


def rule_text(table: str, keys=CITY_KEYS) -> str:
    return f'[[rule]]\ntable = "{table}"\nkeys = {json.dumps(list(keys))}\n'


def render_trigger(cur, table: str, keys=CITY_KEYS) -> str:
    """Notify mode's function and triggers for `table` under a rule with `keys`, as schema install renders."""
    found = rule_tables.describe(cur.connection, rules_file.parse(rule_text(table, keys)))[table]
    cur.execute("SELECT current_schema()")
    return triggers.function_sql(found, cur.fetchone()[0]) + "\n" + triggers.triggers_sql(found)


def drop_copy(cur, table: str) -> None:
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"DROP FUNCTION IF EXISTS {dbnames.function_name(table)}()")


@contextlib.contextmanager
def city_copies(prefix: str, rows: int, variants=VARIANTS):
    """One table per variant; dropped after. Yields ({variant: table}, {mode: the rules the benchmark's
    listener adds in that mode})."""
    names = {variant: table_name(prefix, variant) for variant in variants}
    with pg_conn(application_name="bench-tables") as conn, conn.cursor() as cur:
        try:
            for variant, table in names.items():
                city_copy(cur, table, rows)
                if variant == "notify":
                    cur.execute(render_trigger(cur, table))
                elif variant == "seed_row":
                    cur.execute(SEED_ROW_TRIGGER.format(table=table))
                elif variant == "v1_notify_always":
                    cur.execute(EVERY_COMMIT_NOTIFIES.format(table=table, notify=names.get("notify", table)))
                cur.execute(f"VACUUM ANALYZE {table}")
            extra = {"notify": [rule_text(names["notify"])] if "notify" in names else [],
                     "logical": [rule_text(names["logical"])] if "logical" in names else []}
            yield names, extra
        finally:
            for table in names.values():
                drop_copy(cur, table)
