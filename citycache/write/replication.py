"""The database side of the two capture modes: which one runs, the slot, the publication, retained WAL.

notify: db/trigger.sql's triggers on; no slot of ours. logical: the triggers off (nothing runs inside
the writers' transactions), city in a publication with REPLICA IDENTITY USING INDEX on (id, countrycode)
(IDENTITY_SQL: the schema's own unique index where it has one),
a pgoutput slot. Switching is safe both ways: logical creates its slot before turning the triggers off
(a change in between is seen twice, never not at all); notify turns them on, then, if a slot was left,
queues one "invalidate everything" (what the slot still held is not known) and drops the slot.
"""
from __future__ import annotations

import time

PUBLICATION = "city_invalidation"
KEY_INDEX = "city_id_countrycode_key"
# The replica identity: any unique, plain index on exactly (id, countrycode), in either order. A fresh
# database has one already: db/schema.sql makes its read index unique on (countrycode, id), so logical
# mode adds no index (a third index cost a 100k-row UPDATE 1.38x against 1.08x with two). Elsewhere
# KEY_INDEX is made, and `bin/cli schema uninstall` drops only that one.
IDENTITY_SQL = f"""
DO $$
DECLARE
    found text;
BEGIN
    SELECT i.indexrelid::regclass::text INTO found
    FROM pg_index i
    WHERE i.indrelid = 'city'::regclass AND i.indisunique AND i.indimmediate AND i.indpred IS NULL
      AND i.indexprs IS NULL AND i.indnkeyatts = 2
      AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
           WHERE a.attrelid = 'city'::regclass AND a.attnum = ANY(i.indkey)) = ARRAY['countrycode', 'id']
    ORDER BY i.indexrelid::regclass::text = '{KEY_INDEX}'  -- one the schema has, before ours
    LIMIT 1;
    IF found IS NULL THEN
        CREATE UNIQUE INDEX {KEY_INDEX} ON city (id, countrycode);
        found := '{KEY_INDEX}';
    END IF;
    EXECUTE format('ALTER TABLE city REPLICA IDENTITY USING INDEX %s', found);
END $$;
"""
# The columns the walsender sends: the replica identity and nothing else. The code is all pg_listener
# needs, and every other column would be turned into text for each change and sent for nothing.
PUBLISHED_COLUMNS = "(id, countrycode)"
TRIGGERS = ("city_invalidate_insert_v2", "city_invalidate_update_v2", "city_invalidate_delete_v2",
            "city_invalidate_truncate_v2")
HEARTBEAT_PREFIX = "city-cache heartbeat"
SLOT_RELEASE_SECONDS = 5.0


class NotLogical(SystemExit):
    """wal_level is not logical: one line that says how to fix it."""


def require_logical_wal(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SHOW wal_level")
        level = cur.fetchone()[0]
    if level != "logical":
        raise NotLogical(
            f"pg_listener: CAPTURE_MODE=logical needs wal_level=logical, the server has {level!r}: run "
            "ALTER SYSTEM SET wal_level = logical; then restart Postgres (or set CAPTURE_MODE=notify)")


def prepare_logical(conn, slot: str) -> bool:
    """Publication, replica identity and slot (created if missing), then the triggers off. True if the
    slot was created now (so the outbox may hold rows the triggers wrote before)."""
    with conn.cursor() as cur:
        cur.execute(IDENTITY_SQL)
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (PUBLICATION,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE city {PUBLISHED_COLUMNS}")
        cur.execute("SELECT attnames::text[] FROM pg_publication_tables WHERE pubname = %s AND tablename = 'city'",
                    (PUBLICATION,))
        row = cur.fetchone()
        if row is None or sorted(row[0]) != ["countrycode", "id"]:  # made before it had a column list
            cur.execute(f"ALTER PUBLICATION {PUBLICATION} SET TABLE city {PUBLISHED_COLUMNS}")
        cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        created = cur.fetchone() is None
        if created:
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        _set_triggers(cur, "DISABLE")
    return created


def prepare_notify(conn, slot: str) -> bool:
    """The triggers on; a slot left by logical mode replaced by one invalidate-everything. True if it was."""
    with conn.cursor() as cur:
        _set_triggers(cur, "ENABLE")
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
        cur.execute("INSERT INTO city_outbox (code) VALUES ('*')")
        cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    return True


def _set_triggers(cur, action: str) -> None:
    cur.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'city'::regclass AND tgname = ANY(%s)"
                " AND (tgenabled = 'D') = %s", (list(TRIGGERS), action == "ENABLE"))
    for (name,) in cur.fetchall():
        cur.execute(f"ALTER TABLE city {action} TRIGGER {name}")


def heartbeat(conn) -> None:
    """A tiny WAL record the slot must pass: an idle database then does not pin WAL behind it."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_logical_emit_message(true, %s, '')", (HEARTBEAT_PREFIX,))


def retained_wal_bytes(conn, slot: str) -> int | None:
    """WAL the slot keeps from being recycled; None when there is no such slot (notify mode)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
                    " FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
    return None if row is None else row[0]
