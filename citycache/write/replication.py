"""The database side of the two capture modes: which one runs, the slot, the publication, retained WAL.

notify: every rule's table has its triggers on; no slot of ours. logical: the triggers off (nothing
runs inside the writers' transactions), the rules' tables in one publication, each with the columns
its keys need and a replica identity that carries them in an old row, and a pgoutput slot. Switching
is safe both ways: logical creates its slot and publishes a table before turning its triggers off (a
change in between is seen twice, never not at all); notify turns them on, then, if a slot was left,
queues one "invalidate everything" per rule (what the slot still held is not known) and drops the slot.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from citycache.tables import Table, quote
from citycache.write import dbnames
from citycache.write.triggers import literal

SLOT_RELEASE_SECONDS = 5.0


class NotLogical(SystemExit):
    """wal_level is not logical: one line that says how to fix it."""


@dataclass(frozen=True)
class Identity:
    """How one table's old rows carry its key columns in the WAL, and the columns it publishes."""
    statements: tuple[str, ...]  # what to run to get there (none when the table has it already)
    published: tuple[str, ...] | None  # the publication's column list; None: every column (FULL)
    index_made: str | None = None  # an index made for it (uninstall drops it)


def identity(table: Table) -> Identity:
    """An UPDATE that changes a key column must log the old value, and a DELETE always: so the
    replica identity must cover the rule's columns. Kept if it does; else a unique index over them
    (the schema's own where it has one: a third index costs every non-HOT update), else one made of
    the primary key and them, else FULL (a key column that allows NULL can be in no identity index).
    The walsender sends the identity and the key columns only: every other column would be turned into
    text for each change and sent for nothing."""
    keys = table.rule.columns
    current = table.identity_columns
    if current is None:
        return Identity((), None)
    if current and set(keys) <= set(current):
        return Identity((), _in_table_order(table, current))
    not_null = [column for column, (_type, required) in table.columns.items() if required]
    fits = [index for index in table.indexes if set(keys) <= set(index.columns) <= set(not_null)]
    if fits:
        # Fewest columns first; then the schema's own index before one made for this.
        index = min(fits, key=lambda ix: (len(ix.columns), ix.comment == dbnames.IDENTITY_INDEX_COMMENT))
        return Identity((f"ALTER TABLE {table.sql_name} REPLICA IDENTITY USING INDEX {quote(index.name)}",),
                        _in_table_order(table, index.columns))
    pk = table.primary_key
    if pk and set(keys) <= set(not_null):
        columns = tuple(dict.fromkeys(pk + keys))
        name = _index_name(table, columns)
        return Identity((
            f"CREATE UNIQUE INDEX {quote(name)} ON {table.sql_name} ({', '.join(map(quote, columns))})",
            f"COMMENT ON INDEX {quote(table.schema)}.{quote(name)} IS {literal(dbnames.IDENTITY_INDEX_COMMENT)}",
            f"ALTER TABLE {table.sql_name} REPLICA IDENTITY USING INDEX {quote(name)}"),
            _in_table_order(table, columns), name)
    return Identity((f"ALTER TABLE {table.sql_name} REPLICA IDENTITY FULL",), None)


def _in_table_order(table: Table, columns) -> tuple[str, ...]:
    wanted = set(columns) | set(table.rule.columns)
    return tuple(column for column in table.columns if column in wanted)


def _index_name(table: Table, columns: tuple[str, ...]) -> str:
    name = f"{table.name}_{'_'.join(columns)}_key"  # as Postgres names a unique constraint
    if len(name.encode()) <= 63:
        return name
    return f"{table.name[:40]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}_key"


def publication_entry(table: Table, plan: Identity) -> str:
    columns = "" if plan.published is None else " (" + ", ".join(map(quote, plan.published)) + ")"
    return table.sql_name + columns


def logical_sql(tables: dict[str, Table]) -> list[str]:
    """The statements that give every rule's table its identity and put exactly them in the
    publication (what `schema install` runs in logical mode, and pg_listener at start)."""
    plans = {name: identity(table) for name, table in tables.items()}
    statements = [statement for plan in plans.values() for statement in plan.statements]
    entries = ", ".join(publication_entry(tables[name], plan) for name, plan in plans.items())
    statements.append(f"""DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = '{dbnames.PUBLICATION}') THEN
        CREATE PUBLICATION {dbnames.PUBLICATION} FOR TABLE {entries};
    ELSE
        ALTER PUBLICATION {dbnames.PUBLICATION} SET TABLE {entries};
    END IF;
END $$""")
    return statements


def require_logical_wal(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SHOW wal_level")
        level = cur.fetchone()[0]
    if level != "logical":
        raise NotLogical(
            f"pg_listener: CAPTURE_MODE=logical needs wal_level=logical, the server has {level!r}: run "
            "ALTER SYSTEM SET wal_level = logical; then restart Postgres (or set CAPTURE_MODE=notify)")


def prepare_logical(conn, slot: str, tables: dict[str, Table]) -> tuple[bool, list[str]]:
    """Slot (created if missing), identities and the publication, then the triggers off, in that
    order. Returns whether the slot was created now (so the outbox may hold rows the triggers wrote
    before), and the rules whose table was published without all of its key columns: the changes the
    slot still holds from before lack them, so those rules' keys must all go (the caller queues it)."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        created = cur.fetchone() is None
        if created:
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        cur.execute("SELECT schemaname, tablename, attnames::text[] FROM pg_publication_tables WHERE pubname = %s",
                    (dbnames.PUBLICATION,))
        published = {(schema, name): set(columns) for schema, name, columns in cur.fetchall()}
        plans = {name: identity(table) for name, table in tables.items()}
        wanted = {(table.schema, table.name): set(plans[name].published or table.columns)
                  for name, table in tables.items()}
        short = [name for name, table in tables.items() if (table.schema, table.name) in published
                 and not set(table.rule.columns) <= published[(table.schema, table.name)]]
        cur.execute("BEGIN")
        for plan in plans.values():
            for statement in plan.statements:
                cur.execute(statement)
        if published != wanted:
            cur.execute(logical_sql(tables)[-1])
        cur.execute("COMMIT")
        set_triggers(cur, tables, "DISABLE")
    return created, short


def prepare_notify(conn, slot: str, tables: dict[str, Table]) -> bool:
    """The triggers on; a slot left by logical mode replaced by one invalidate-everything per rule.
    True if it was."""
    with conn.cursor() as cur:
        set_triggers(cur, tables, "ENABLE")
        # A logical pg_listener that just stopped may hold the slot a moment longer: give it that.
        deadline = time.monotonic() + SLOT_RELEASE_SECONDS
        while True:
            cur.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            row = cur.fetchone()
            if row is None:
                return False
            if row[0] is None:
                break
            if time.monotonic() > deadline:  # a logical pg_listener still runs: leave its slot alone
                return False
            time.sleep(0.05)
        cur.execute(f"INSERT INTO {dbnames.OUTBOX} (tbl, vals) SELECT unnest(%s::text[]), NULL", (list(tables),))
        cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    return True


def set_triggers(cur, tables: dict[str, Table], action: str) -> None:
    for table in tables.values():
        cur.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::oid AND tgname = ANY(%s)"
                    " AND (tgenabled = 'D') = %s", (table.oid, list(dbnames.TRIGGERS), action == "ENABLE"))
        for (name,) in cur.fetchall():
            cur.execute(f"ALTER TABLE {table.sql_name} {action} TRIGGER {quote(name)}")


def heartbeat(conn) -> None:
    """A tiny WAL record the slot must pass: an idle database then does not pin WAL behind it."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_logical_emit_message(true, %s, '')", (dbnames.HEARTBEAT_PREFIX,))


def retained_wal_bytes(conn, slot: str) -> int | None:
    """WAL the slot keeps from being recycled; None when there is no such slot (notify mode)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
                    " FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
    return None if row is None else row[0]
