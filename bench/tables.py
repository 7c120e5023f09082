"""Copies of the city table for write-cost comparisons: none, notify mode's triggers, the seed's row
trigger, and one for logical mode (no trigger: its changes are read from the WAL)."""
from __future__ import annotations

import contextlib

from bench.common import pg_conn

# The seed's trigger, as the project started from: one pg_notify per changed row.
SEED_ROW_TRIGGER = """
CREATE OR REPLACE FUNCTION bench_seed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('city_updates', NEW.countrycode); RETURN NEW; END $$;
CREATE TRIGGER bench_seed_notify AFTER UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION bench_seed_notify();
"""
# Ours in notify mode, exactly as db/trigger.sql attaches city_invalidate_v2 to city (writes city_outbox,
# NOTIFY only while pg_listener may be asleep; the stack's pg_listener drains it).
STATEMENT_TRIGGERS = """
CREATE TRIGGER bench_invalidate_insert AFTER INSERT ON {table}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION city_invalidate_v2();
CREATE TRIGGER bench_invalidate_update AFTER UPDATE ON {table}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION city_invalidate_v2();
CREATE TRIGGER bench_invalidate_delete AFTER DELETE ON {table}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION city_invalidate_v2();
"""
# The v1 shape, as before issue 8: an outbox row and a NOTIFY in every commit (the stack's pg_listener
# drains the rows). Kept here only to show before and after in one run.
EVERY_COMMIT_NOTIFIES = """
CREATE OR REPLACE FUNCTION bench_notify_always() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE changed text;
BEGIN
    FOR changed IN INSERT INTO city_outbox (code) SELECT DISTINCT countrycode FROM (
            SELECT countrycode FROM old_rows UNION ALL SELECT countrycode FROM new_rows) AS touched
            RETURNING code LOOP
        PERFORM pg_notify('city_updates', changed);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_notify_always AFTER UPDATE ON {table}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_notify_always();
"""
# logical: no trigger; bench.modes publishes the table to a logical pg_listener while it is measured.
VARIANTS = {"none": "", "notify": STATEMENT_TRIGGERS, "seed_row": SEED_ROW_TRIGGER, "logical": "",
            "v1_notify_always": EVERY_COMMIT_NOTIFIES}


def table_name(prefix: str, variant: str) -> str:
    return f"{prefix}_{variant}"


@contextlib.contextmanager
def city_copies(prefix: str, rows: int):
    """One table per variant, each with `rows` rows cycled from city (ids 1..rows); dropped after."""
    names = {variant: table_name(prefix, variant) for variant in VARIANTS}
    with pg_conn(application_name="bench-tables") as conn, conn.cursor() as cur:
        try:
            for variant, table in names.items():
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
                # As db/schema.sql makes city's: logical mode uses it as the replica identity (bench.modes).
                cur.execute(f"CREATE UNIQUE INDEX {table}_countrycode_idx ON {table} (countrycode, id)")
                if VARIANTS[variant]:
                    cur.execute(VARIANTS[variant].format(table=table))
                cur.execute(f"VACUUM ANALYZE {table}")
            yield names
        finally:
            for table in names.values():
                cur.execute(f"DROP TABLE IF EXISTS {table}")
