"""The database pieces the system adds to the rules' tables (`bin/cli schema install|uninstall`).

Only what invalidation needs: the outbox, the flag, and per table in the rules a trigger function and
its four statement triggers (notify mode); with CAPTURE_MODE=logical also each table's replica
identity and the publication. Never a table's rows (db/schema.sql and the seed are for a fresh
development database). Install renders the SQL from the rules (citycache/write/triggers.py,
citycache/write/replication.py), applies each part in one transaction, replaces what an older version
or an edited rule left, and drops the triggers of tables no longer in the rules.
"""
from __future__ import annotations

from dataclasses import dataclass

from citycache import tables as rule_tables
from citycache.rules import BadRules, Rules
from citycache.tables import Table, quote
from citycache.write import dbnames, replication, triggers


class SchemaError(Exception):
    """The database cannot take the pieces (a rule's table is missing, for one)."""


@dataclass(frozen=True)
class Piece:
    name: str
    present: str  # SQL answering one boolean
    drop: str


def _one(conn, sql: str, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def _all(conn, sql: str, params=None) -> list:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _function_piece(table: Table) -> Piece:
    name = dbnames.function_name(table.rule.table)
    fingerprint = triggers.fingerprint(table.rule.table, table.rule.columns)
    return Piece(f"function {name}() for {table.rule.table} ({', '.join(table.rule.columns)})",
                 f"SELECT coalesce(obj_description(to_regprocedure('{quote(name)}()'), 'pg_proc') = "
                 f"{triggers.literal(fingerprint)}, false)",
                 f"DROP FUNCTION IF EXISTS {quote(name)}()")


def _trigger_piece(table: Table, trigger: str) -> Piece:
    return Piece(f"trigger {trigger} on {table.rule.table}",
                 f"SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = {table.oid}::oid AND tgname = '{trigger}')",
                 f"DROP TRIGGER IF EXISTS {quote(trigger)} ON {table.sql_name}")


SHARED = (
    Piece(f"table {dbnames.OUTBOX}", f"SELECT to_regclass('{dbnames.OUTBOX}') IS NOT NULL",
          f"DROP TABLE IF EXISTS {dbnames.OUTBOX}"),
    Piece(f"sequence {dbnames.FLAG}", f"SELECT to_regclass('{dbnames.FLAG}') IS NOT NULL",
          f"DROP SEQUENCE IF EXISTS {dbnames.FLAG}"),
)


def notify_pieces(found: dict[str, Table]) -> list[Piece]:
    pieces = list(SHARED)
    for table in found.values():
        pieces.append(_function_piece(table))
        pieces += [_trigger_piece(table, trigger) for trigger in dbnames.TRIGGERS]
    return pieces


def logical_pieces(found: dict[str, Table]) -> list[Piece]:
    pieces = []
    entries = []
    for table in found.values():
        plan = replication.identity(table)
        pieces.append(Piece(
            f"replica identity of {table.rule.table} (carries {', '.join(table.rule.columns) or 'a key'})",
            "SELECT " + ("true" if not plan.statements else "false"), ""))
        columns = plan.published if plan.published is not None else tuple(table.columns)
        entries.append(f"{table.schema}.{table.name}({','.join(columns)})")
    pieces.append(Piece(
        f"publication {dbnames.PUBLICATION} of {', '.join(t.rule.table for t in found.values())}",
        "SELECT coalesce((SELECT array_agg(schemaname || '.' || tablename || '(' || array_to_string(attnames, ',')"
        f" || ')' ORDER BY schemaname, tablename) FROM pg_publication_tables WHERE pubname = '{dbnames.PUBLICATION}')"
        f" = ARRAY[{', '.join(triggers.literal(e) for e in sorted(entries))}]::text[], false)",
        f"DROP PUBLICATION IF EXISTS {dbnames.PUBLICATION}"))
    return pieces


# Triggers that notify city_updates but are not ours (the seed's row-level one, version 2): the shared
# SQL replaces them, so install says so.
OLDER_TRIGGERS = f"""
    SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE t.tgrelid = to_regclass('city') AND NOT t.tgisinternal
      AND (p.prosrc LIKE '%{dbnames.CHANNEL}%' OR p.proname = '{dbnames.V2_FUNCTION}')
      AND p.proname NOT LIKE '{dbnames.FUNCTION_PREFIX}%' ORDER BY 1"""
# Our triggers on tables the rules no longer name.
STALE_TRIGGERS = f"""
    SELECT t.tgrelid::regclass::text, t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE p.proname LIKE '{dbnames.FUNCTION_PREFIX}%%' AND NOT (t.tgrelid = ANY(%s::oid[])) ORDER BY 1, 2"""
SLOTS = ("SELECT slot_name FROM pg_replication_slots WHERE plugin = 'pgoutput' AND NOT active"
         " AND database = current_database()")


def describe(conn, rules: Rules) -> dict[str, Table]:
    try:
        return rule_tables.describe(conn, rules)
    except BadRules as exc:
        raise SchemaError(str(exc.code)) from None


def missing(conn, settings, rules: Rules) -> list[str]:
    """Names of the pieces not present (what doctor and pg_listener report)."""
    found = describe(conn, rules)
    pieces = notify_pieces(found) + (logical_pieces(found) if settings.capture_mode == "logical" else [])
    return [piece.name for piece in pieces if not _one(conn, piece.present)]


def install(conn, settings, rules: Rules, *, dry_run: bool = False) -> list[str]:
    """Apply each part that lacks a piece or has something older to replace; return what it did."""
    found = describe(conn, rules)
    schema = _one(conn, "SELECT current_schema()")
    older = [name for (name,) in _all(conn, OLDER_TRIGGERS)]
    stale = _all(conn, STALE_TRIGGERS, ([t.oid for t in found.values()],))
    v2 = _one(conn, f"SELECT to_regclass('{dbnames.V2_OUTBOX}') IS NOT NULL")
    parts = [(notify_pieces, triggers.install_sql(found, schema),
              [f"replaced: trigger {name} on city (it notified {dbnames.CHANNEL})" for name in older]
              + [f"removed: trigger {name} on {table} (no longer in the rules)" for table, name in stale]
              + ([f"replaced: version 2's {dbnames.V2_OUTBOX} (its pending rows moved over)"] if v2 else []))]
    if settings.capture_mode == "logical":
        parts.append((logical_pieces, ";\n".join(replication.logical_sql(found)) + ";", []))
    report = []
    for pieces_of, sql, replaced in parts:
        pieces = pieces_of(found)
        absent = [piece.name for piece in pieces if not _one(conn, piece.present)]
        if not absent and not replaced:
            report += [f"present: {piece.name}" for piece in pieces]
            continue
        if dry_run:
            report += [f"would create: {name}" for name in absent]
            report += [line.replace("replaced:", "would replace:").replace("removed:", "would remove:")
                       for line in replaced]
            report += ["BEGIN;", sql, "COMMIT;"]
            continue
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('city-cache schema install'))")
            cur.execute(sql)
            cur.execute("COMMIT")
        found = describe(conn, rules)  # what it has now (an identity index made, say)
        pieces = pieces_of(found)
        still = [piece.name for piece in pieces if not _one(conn, piece.present)]
        if still:
            raise SchemaError(f"applied, but these are still missing: {', '.join(still)}")
        report += [f"created: {piece.name}" if piece.name in absent else f"present: {piece.name}" for piece in pieces]
        report += replaced
    return report


def uninstall(conn, settings, rules: Rules, *, dry_run: bool = False) -> list[str]:
    """Drop every piece of ours that is present (both modes', whatever the mode now), triggers first,
    in one transaction; return what it did. Rows of the rules' tables are never touched."""
    drops: list[tuple[str, str]] = []  # (what, SQL)
    for (slot,) in _all(conn, SLOTS):
        drops.append((f"replication slot {slot}", f"SELECT pg_drop_replication_slot('{slot}')"))
    for table, name in _all(conn, STALE_TRIGGERS, ([],)):  # every trigger of ours, on any table
        drops.append((f"trigger {name} on {table}", f"DROP TRIGGER IF EXISTS {quote(name)} ON {table}"))
    for (function,) in _all(conn, f"SELECT oid::regprocedure::text FROM pg_proc WHERE proname LIKE "
                                  f"'{dbnames.FUNCTION_PREFIX}%' AND prorettype = 'trigger'::regtype ORDER BY 1"):
        drops.append((f"function {function}", f"DROP FUNCTION IF EXISTS {function}"))
    if _one(conn, f"SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = '{dbnames.PUBLICATION}')"):
        drops.append((f"publication {dbnames.PUBLICATION}", f"DROP PUBLICATION IF EXISTS {dbnames.PUBLICATION}"))
    # Identities set for logical mode go back to DEFAULT, then the indexes made for them go.
    for oid, name, identity in _all(conn, "SELECT c.oid::bigint, c.oid::regclass::text, c.relreplident FROM pg_class c "
                                          "WHERE c.oid = ANY(%s::regclass[]) AND c.relreplident IN ('i', 'f')",
                                    ([t for t in rules.tables if _one(conn, "SELECT to_regclass(%s) IS NOT NULL", (t,))],)):
        drops.append((f"replica identity {'FULL' if identity == 'f' else 'USING INDEX'} of {name} (back to DEFAULT)",
                      f"ALTER TABLE {name} REPLICA IDENTITY DEFAULT"))
    for (index,) in _all(conn, "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE obj_description("
                               "i.indexrelid, 'pg_class') = %s OR i.indexrelid = to_regclass(%s) ORDER BY 1",
                         (dbnames.IDENTITY_INDEX_COMMENT, dbnames.V2_IDENTITY_INDEX)):
        drops.append((f"index {index} (made for logical mode's replica identity)", f"DROP INDEX IF EXISTS {index}"))
    for piece in reversed(SHARED):
        if _one(conn, piece.present):
            drops.append((piece.name, piece.drop))
    for (name,) in _all(conn, "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('city') AND tgname = ANY(%s)",
                        (list(dbnames.V2_TRIGGERS),)):
        drops.insert(0, (f"trigger {name} on city (version 2)", f"DROP TRIGGER IF EXISTS {name} ON city"))
    for what, present, sql in (
            (f"function {dbnames.V2_FUNCTION}() (version 2)", f"SELECT to_regprocedure('{dbnames.V2_FUNCTION}()') IS NOT NULL",
             f"DROP FUNCTION IF EXISTS {dbnames.V2_FUNCTION}()"),
            (f"table {dbnames.V2_OUTBOX} (version 2)", f"SELECT to_regclass('{dbnames.V2_OUTBOX}') IS NOT NULL",
             f"DROP TABLE IF EXISTS {dbnames.V2_OUTBOX}"),
            (f"sequence {dbnames.V2_FLAG} (version 2)", f"SELECT to_regclass('{dbnames.V2_FLAG}') IS NOT NULL",
             f"DROP SEQUENCE IF EXISTS {dbnames.V2_FLAG}")):
        if _one(conn, present):
            drops.append((what, sql))
    if not drops:
        return ["nothing to remove: none of the pieces is present"]
    notes = []
    if _one(conn, f"SELECT to_regclass('{dbnames.OUTBOX}') IS NOT NULL"):
        waiting = _one(conn, f"SELECT count(*) FROM {dbnames.OUTBOX}")
        if waiting:
            notes.append(f"note: {dbnames.OUTBOX} held {waiting} change(s) not yet sent to Kafka")
    if dry_run:
        return [f"{sql};" for _, sql in drops] + notes
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        for _, sql in drops:
            cur.execute(sql)
        cur.execute("COMMIT")
    return [f"dropped: {what}" for what, _ in drops] + notes
