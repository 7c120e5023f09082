"""Which shape of notify mode's trigger costs a writer least: `python -m bench.trigger_shapes [ROUNDS]`.

Side by side on copies of city, in rotating order, median of the rounds:
  none        no trigger
  v2          the version before the rules (city only): one outbox column, the code; kept here only to
              show before and after in one run (it writes to a scratch outbox of its shape, emptied
              between rounds)
  generated   one function per rule's table, its statements written out (db/table_trigger.sql): what
              `schema install` renders; plpgsql plans each statement once per session
  dynamic     one function for every table, the rule's columns passed as trigger arguments and the
              statements built with format() and run with EXECUTE: planned on every call

Two measures. Backend CPU per commit: one client, synchronous_commit off, read from the backend's
/proc/<pid>/schedstat around a run of single-row UPDATEs (neither contention nor the disk blurs it).
And pgbench's 8 clients with the writers on one core and everything else on the other (bench.pinning),
so that draining the outbox (generated and dynamic are the benchmark's own listener's rules; v2's
rows are not drained) costs the writers nothing.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench import pinning
from bench.common import ARTIFACTS, median, pg_conn
from bench.modes import capture_mode
from bench.tables import city_copy, drop_copy, render_trigger, rule_text
from bench.write_cost import pgbench
from citycache.write import dbnames

ROWS = 50_000
SHAPES = ("none", "v2", "generated", "dynamic")
COMMITS_PER_ROUND = 2000
V2_OUTBOX = "bench_v2_outbox"
V2 = f"""
CREATE TABLE IF NOT EXISTS {V2_OUTBOX} (code text NOT NULL);
CREATE OR REPLACE FUNCTION bench_invalidate_v2() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO {V2_OUTBOX} (code) VALUES ('*');
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO {V2_OUTBOX} (code) SELECT DISTINCT countrycode FROM new_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO {V2_OUTBOX} (code) SELECT DISTINCT countrycode FROM (
            SELECT countrycode FROM old_rows UNION ALL SELECT countrycode FROM new_rows) AS touched;
    ELSE
        INSERT INTO {V2_OUTBOX} (code) SELECT DISTINCT countrycode FROM old_rows;
    END IF;
    IF pg_sequence_last_value('{dbnames.FLAG}') IS DISTINCT FROM 0 THEN
        IF TG_OP = 'UPDATE' THEN
            FOR changed IN SELECT DISTINCT countrycode FROM (
                    SELECT countrycode FROM old_rows UNION ALL SELECT countrycode FROM new_rows) AS touched LOOP
                PERFORM pg_notify('{dbnames.CHANNEL}', changed);
            END LOOP;
        END IF;
    END IF;
    RETURN NULL;
END $$;
"""
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


def statement_triggers(table: str, function: str, args: str = "") -> str:
    return "\n".join(
        f"CREATE TRIGGER bench_shape_{event} AFTER {event.upper()} ON {table} {transitions} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {function}({args});"
        for event, transitions in (("insert", "REFERENCING NEW TABLE AS new_rows"),
                                   ("update", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                                   ("delete", "REFERENCING OLD TABLE AS old_rows")))


def backend_cpu_us(cur, table: str, commits: int) -> float:
    """Backend CPU per single-row UPDATE commit on `table`, in microseconds."""
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]

    def ns() -> int:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])

    before = ns()
    for i in range(commits):
        cur.execute(f"UPDATE {table} SET population = population + 1 WHERE id = %s", (1 + i * 7919 % ROWS,))
    return (ns() - before) / commits / 1000


def main(rounds: int = 8, seconds: float = 6.0) -> dict:
    names = {shape: f"bench_shape_{shape}" for shape in SHAPES}
    cpu = {shape: [] for shape in SHAPES}
    tps = {shape: [] for shape in SHAPES}
    rules = [rule_text(names["generated"])]
    try:
        with pg_conn(application_name="bench-shapes") as conn, conn.cursor() as cur:
            for table in names.values():
                city_copy(cur, table, ROWS)
            cur.execute(V2 + statement_triggers(names["v2"], "bench_invalidate_v2"))
            cur.execute(render_trigger(cur, names["generated"]))
            cur.execute(DYNAMIC + statement_triggers(
                names["dynamic"], "bench_invalidate_dynamic", f"'\"countrycode\"::text AS v1', 'v1', '{names['generated']}'"))
            for table in names.values():
                cur.execute(f"VACUUM ANALYZE {table}")
        with tempfile.TemporaryDirectory() as tmp, capture_mode("notify", rules):
            scripts = {}
            for shape, table in names.items():
                scripts[shape] = Path(tmp) / f"{shape}.sql"
                scripts[shape].write_text(f"\\set id random(1, {ROWS})\n"
                                          f"UPDATE {table} SET population = population + 1 WHERE id = :id;\n")
            with pg_conn(application_name="bench-shapes-cpu") as conn, conn.cursor() as cur:
                cur.execute("SET synchronous_commit = off")
                for shape in SHAPES:  # warm: plans cached, pages read
                    backend_cpu_us(cur, names[shape], 200)
                for round_ in range(rounds):
                    for shape in SHAPES[round_ % 4:] + SHAPES[:round_ % 4]:
                        cpu[shape].append(backend_cpu_us(cur, names[shape], COMMITS_PER_ROUND))
                    cur.execute(f"TRUNCATE {V2_OUTBOX}")
            if pinning.available():
                for round_ in range(rounds):
                    for shape in SHAPES[round_ % 4:] + SHAPES[:round_ % 4]:
                        with pinning.writers_pinned() as prefix:
                            tps[shape].append(pgbench(scripts[shape], seconds, prefix))
                    with pg_conn(application_name="bench-shapes") as conn, conn.cursor() as cur:
                        cur.execute(f"TRUNCATE {V2_OUTBOX}")
    finally:
        with pg_conn(application_name="bench-shapes") as conn, conn.cursor() as cur:
            for table in names.values():
                drop_copy(cur, table)
            cur.execute(f"DROP TABLE IF EXISTS {V2_OUTBOX}")
            cur.execute("DROP FUNCTION IF EXISTS bench_invalidate_v2(); DROP FUNCTION IF EXISTS bench_invalidate_dynamic()")
    result = {
        "backend_us_per_commit": {s: round(median(v), 1) for s, v in cpu.items()},
        "trigger_us_per_commit": {s: round(median([c - n for c, n in zip(cpu[s], cpu["none"])]), 1)
                                  for s in SHAPES if s != "none"},
        "pinned_tps_ratio_to_none": {s: round(median([t / n for t, n in zip(tps[s], tps["none"])]), 3)
                                     for s in SHAPES if s != "none" and tps[s]},
        "runs": {"cpu_us": cpu, "tps": tps}}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "trigger-shapes.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    return result


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
