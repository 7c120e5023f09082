"""Notify mode's SQL, rendered from the rules: db/trigger.sql (the outbox and the flag, shared) and, per
rule's table, db/table_trigger.sql (its function) and its four statement triggers.

`install_sql` is the whole of one `bin/cli schema install` of notify mode's pieces, one transaction:
what is missing is created, a function whose rule changed is replaced, triggers are created only when
missing (logical mode disables them, and installing again must leave them so), and the triggers of a
table no longer in the rules are dropped with their function.
"""
from __future__ import annotations

from pathlib import Path

from citycache.tables import Table, quote
from citycache.write import dbnames

DB_DIR = Path(__file__).resolve().parent.parent.parent / "db"
_EVENTS = {  # trigger event -> its transition tables
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
    "truncate": "",
}


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fill(template: str, **values: str) -> str:
    """`{{name}}` placeholders; single braces are SQL's own ('{}'::text[])."""
    for name, value in values.items():
        template = template.replace("{{%s}}" % name, value)
    if "{{" in template:
        raise ValueError(f"unfilled placeholder in {template[template.index('{{'):][:40]!r}")
    return template


def fingerprint(table: str, columns: tuple[str, ...]) -> str:
    """What a function's comment says of the rule it was rendered from: its table and columns."""
    return f"city-cache rule {table}: ({', '.join(columns)})"


def shared_sql(schema: str) -> str:
    return fill((DB_DIR / "trigger.sql").read_text(encoding="utf-8"), outbox=outbox_name(schema),
                flag=f"{quote(schema)}.{quote(dbnames.FLAG)}", channel=dbnames.CHANNEL,
                v2_outbox=dbnames.V2_OUTBOX, v2_flag=dbnames.V2_FLAG, v2_function=dbnames.V2_FUNCTION,
                function_prefix=dbnames.FUNCTION_PREFIX)


def outbox_name(schema: str) -> str:
    return f"{quote(schema)}.{quote(dbnames.OUTBOX)}"


# Types whose values are equal exactly when their text is: DISTINCT over the column itself finds the
# same values as over its text, and the cast then runs once per distinct value, not once per changed
# row (char(n)'s cast to text is a function call: 200,000 of them in a 100k-row UPDATE of city cost
# the bulk figure about 0.08x). Other types (numeric's 1.0 and 1.00, citext) are cast first.
TEXT_EXACT_TYPES = frozenset({16, 20, 21, 23, 25, 1042, 1043, 2950})  # bool, int8/2/4, text, char(n), varchar, uuid


def function_sql(table: Table, schema: str) -> str:
    """The trigger function of one rule's table (db/table_trigger.sql filled in)."""
    rule = table.rule
    columns = [f"{quote(column)}{'' if table.columns[column][0] in TEXT_EXACT_TYPES else '::text'} AS v{i}"
               for i, column in enumerate(rule.columns, start=1)]
    names = ", ".join(f"v{i}" for i in range(1, len(columns) + 1))
    both_sides = " UNION ALL ".join(f"SELECT {', '.join(columns)} FROM {side}" for side in ("old_rows", "new_rows"))

    def values(source: str) -> str:
        if not columns:  # a rule of constant keys: one row per statement that changed any
            return f"SELECT FROM {source} LIMIT 1"
        return f"SELECT DISTINCT {', '.join(columns)} FROM {source}"

    def payloads(source: str) -> str:
        if not columns:
            return f"SELECT {literal(rule.table)}::text FROM {source} LIMIT 1"
        return f"SELECT v1::text FROM (SELECT DISTINCT {columns[0]} FROM {source}) AS changed"

    if columns:
        both_values = f"SELECT DISTINCT {names} FROM ({both_sides}) AS touched"
        both_payloads = ("SELECT v1::text FROM (SELECT DISTINCT v1 FROM (" + " UNION ALL ".join(
            f"SELECT {columns[0]} FROM {side}" for side in ("old_rows", "new_rows")) + ") AS touched) AS changed")
    else:
        both_values = "SELECT FROM (SELECT FROM old_rows UNION ALL SELECT FROM new_rows) AS touched LIMIT 1"
        both_payloads = payloads("(SELECT FROM old_rows UNION ALL SELECT FROM new_rows) AS touched")
    return fill(
        (DB_DIR / "table_trigger.sql").read_text(encoding="utf-8"),
        function=quote(dbnames.function_name(rule.table)), outbox=outbox_name(schema), rule=literal(rule.table),
        flag=literal(f"{quote(schema)}.{quote(dbnames.FLAG)}"), channel=dbnames.CHANNEL,
        array="ARRAY[" + ", ".join(f"v{i}::text" for i in range(1, len(columns) + 1)) + "]" if columns
        else "'{}'::text[]",
        new_values=values("new_rows"), old_values=values("old_rows"), both_values=both_values,
        new_payloads=payloads("new_rows"), old_payloads=payloads("old_rows"), both_payloads=both_payloads,
        comment=literal(fingerprint(rule.table, rule.columns)))


def triggers_sql(table: Table) -> str:
    """Its four statement triggers, each created only when missing (a disabled one stays disabled)."""
    function = quote(dbnames.function_name(table.rule.table))
    statements = []
    for event, transitions in _EVENTS.items():
        name = dbnames.trigger_name(event)
        create = (f"CREATE TRIGGER {quote(name)} AFTER {event.upper()} ON {table.sql_name} {transitions} "
                  f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
        statements.append(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = {table.oid}::oid AND "
            f"tgname = {literal(name)}) THEN {create}; END IF; END $$;")
    return "\n".join(statements)


# Our triggers on tables the rules no longer name, with their functions: dropped by install.
STALE_SQL = """
DO $$
DECLARE
    old record;
BEGIN
    FOR old IN
        SELECT t.tgrelid::regclass AS tbl, t.tgname, p.oid::regprocedure AS fn FROM pg_trigger t
        JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE p.proname LIKE '{prefix}%' AND NOT (t.tgrelid = ANY({keep}::oid[]))
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', old.tgname, old.tbl);
    END LOOP;
    FOR old IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc p
        WHERE p.proname LIKE '{prefix}%' AND p.prorettype = 'trigger'::regtype
          AND NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgfoid = p.oid)
    LOOP
        EXECUTE format('DROP FUNCTION %s', old.fn);
    END LOOP;
END;
$$;
"""


def stale_sql(tables: dict[str, Table]) -> str:
    keep = "ARRAY[" + ", ".join(str(table.oid) for table in tables.values()) + "]"
    return STALE_SQL.replace("{keep}", keep).replace("{prefix}", dbnames.FUNCTION_PREFIX)


def install_sql(tables: dict[str, Table], schema: str) -> str:
    """The shared part, each table's function and triggers, and the stale ones gone (no BEGIN/COMMIT:
    the caller makes it one transaction)."""
    parts = [shared_sql(schema)]
    for table in tables.values():
        parts += [function_sql(table, schema), triggers_sql(table)]
    parts.append(stale_sql(tables))
    return "\n".join(parts)


_INSTALLED_SQL = """
SELECT obj_description(to_regprocedure(%(function)s), 'pg_proc'),
       (SELECT count(*) FROM pg_trigger WHERE tgrelid = %(oid)s::oid AND tgname = ANY(%(triggers)s)
          AND tgfoid = to_regprocedure(%(function)s))
"""


def not_installed(conn, tables: dict[str, Table]) -> list[str]:
    """What `schema install` has not given the rules' tables: a function rendered from these rules,
    and its four triggers (notify mode captures nothing of a table without them)."""
    problems = []
    with conn.cursor() as cur:
        if _scalar(cur, "SELECT to_regclass(%s) IS NULL", (dbnames.OUTBOX,)):
            return [f"no outbox {dbnames.OUTBOX} in the database"]
        for table in tables.values():
            rule = table.rule
            function = f"{quote(dbnames.function_name(rule.table))}()"
            cur.execute(_INSTALLED_SQL, {"function": function, "oid": table.oid, "triggers": list(dbnames.TRIGGERS)})
            comment, count = cur.fetchone()
            if comment is None:
                problems.append(f"table {rule.table} has no invalidation triggers")
            elif comment != fingerprint(rule.table, rule.columns):
                problems.append(f"the triggers of {rule.table} were made for other rules ({comment})")
            elif count < len(dbnames.TRIGGERS):
                problems.append(f"table {rule.table} has {count} of its {len(dbnames.TRIGGERS)} triggers")
    return problems


def _scalar(cur, sql: str, params=()):
    cur.execute(sql, params)
    return cur.fetchone()[0]
