"""Which shape of notify mode's trigger costs a writer least: `python -m bench.trigger_shapes`.

The issue behind the rules asked it of two shapes; this measures them side by side, with pgbench's
8 clients of single-row UPDATEs on copies of city (as figure 6), rotating, median of the rounds:
  none        no trigger
  generated   one function per rule's table, its statements written out (db/table_trigger.sql): what
              `schema install` renders; plpgsql plans each statement once per session
  dynamic     one function for every table, the rule's columns passed as a trigger argument and the
              statements built with format() and run with EXECUTE: planned on every call
Both write the same outbox rows, under the generated copy's rule, which the benchmark's own pg_listener
has (bench.modes): both are published as city's changes are.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.common import median, pg_conn
from bench.modes import capture_mode
from bench.tables import city_copy, drop_copy, render_trigger, rule_text
from bench.write_cost import pgbench
from citycache.write import dbnames

ROWS = 50_000
DYNAMIC = f"""
CREATE OR REPLACE FUNCTION bench_invalidate_dynamic() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    columns text := TG_ARGV[0];  -- the rule's columns, e.g. '"countrycode"::text AS v1'
    names text := TG_ARGV[1];    -- 'v1'
    rule text := TG_ARGV[2];     -- the rule's table, as the outbox names it
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO {dbnames.OUTBOX} (tbl, vals) VALUES (rule, NULL);
    ELSIF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO {dbnames.OUTBOX} (tbl, vals) SELECT %L, ARRAY[%s] FROM (SELECT DISTINCT %s FROM new_rows) AS d',
                       rule, names, columns);
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('INSERT INTO {dbnames.OUTBOX} (tbl, vals) SELECT %L, ARRAY[%s] FROM (SELECT DISTINCT %s FROM '
                       '(SELECT %s FROM old_rows UNION ALL SELECT %s FROM new_rows) AS t) AS d',
                       rule, names, names, columns, columns);
    ELSE
        EXECUTE format('INSERT INTO {dbnames.OUTBOX} (tbl, vals) SELECT %L, ARRAY[%s] FROM (SELECT DISTINCT %s FROM old_rows) AS d',
                       rule, names, columns);
    END IF;
    IF pg_sequence_last_value('{dbnames.FLAG}') IS DISTINCT FROM 0 THEN
        PERFORM pg_notify('{dbnames.CHANNEL}', rule);
    END IF;
    RETURN NULL;
END $$;
"""


def dynamic_triggers(table: str, rule: str) -> str:
    args = f"'\"countrycode\"::text AS v1', 'v1', '{rule}'"
    return "\n".join(
        f"CREATE TRIGGER bench_dynamic_{event} AFTER {event.upper()} ON {table} {transitions} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION bench_invalidate_dynamic({args});"
        for event, transitions in (("insert", "REFERENCING NEW TABLE AS new_rows"),
                                   ("update", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                                   ("delete", "REFERENCING OLD TABLE AS old_rows")))


def main(rounds: int = 5, seconds: float = 6.0) -> dict:
    names = {"none": "bench_shape_none", "generated": "bench_shape_generated", "dynamic": "bench_shape_dynamic"}
    tps = {shape: [] for shape in names}
    try:
        with pg_conn(application_name="bench-shapes") as conn, conn.cursor() as cur:
            for shape, table in names.items():
                city_copy(cur, table, ROWS)
            cur.execute(render_trigger(cur, names["generated"], ("cities_{countrycode}", "country_{countrycode}")))
            cur.execute(DYNAMIC)
            cur.execute(dynamic_triggers(names["dynamic"], names["generated"]))
        with tempfile.TemporaryDirectory() as tmp, capture_mode("notify", [rule_text(names["generated"])]):
            scripts = {}
            for shape, table in names.items():
                scripts[shape] = Path(tmp) / f"{shape}.sql"
                scripts[shape].write_text(f"\\set id random(1, {ROWS})\n"
                                          f"UPDATE {table} SET population = population + 1 WHERE id = :id;\n")
            pgbench(scripts["none"], 1)
            order = list(names)
            for round_ in range(rounds):
                for shape in order[round_ % 3:] + order[:round_ % 3]:
                    tps[shape].append(pgbench(scripts[shape], seconds))
    finally:
        with pg_conn(application_name="bench-shapes") as conn, conn.cursor() as cur:
            for table in names.values():
                drop_copy(cur, table)
            cur.execute("DROP FUNCTION IF EXISTS bench_invalidate_dynamic()")
    ratios = {shape: round(median([t / n for t, n in zip(tps[shape], tps["none"])]), 3)
              for shape in ("generated", "dynamic")}
    result = {"ratios_to_none": ratios, "median_tps": {s: round(median(v)) for s, v in tps.items()}, "runs_tps": tps}
    print(result)
    return result


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
