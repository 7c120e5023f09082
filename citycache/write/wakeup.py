"""The listener's side of the wake-up handshake with the writers' trigger (db/table_trigger.sql).

Writers NOTIFY only while the flag (dbnames.FLAG) is 1. A listener clears it when a
notification wakes it (outbox.AWAKE) and, before it sleeps again:
  1. sets it (`fall_asleep`): from now on every writer that reads it will notify;
  2. waits until none of the transactions then in flight is still in flight (`still_in_flight`):
     a writer that read 0 already held an xid when it read it, so it is among them or committed;
  3. drains the outbox once more, which now sees every row of every writer that did not notify.
Snapshot membership, not pg_xact_status: clog says "committed" slightly before a new snapshot can see
the commit (DESIGN.md, 7).
"""
from __future__ import annotations

from citycache.write.dbnames import FLAG

FALL_ASLEEP_SQL = (
    f"SELECT setval('{FLAG}', 1);"
    " SELECT coalesce(array_agg(x::text::bigint), '{}') FROM pg_snapshot_xip(pg_current_snapshot()) AS x"
)
IN_FLIGHT_SQL = (
    "SELECT coalesce(array_agg(x::text::bigint), '{}') FROM pg_snapshot_xip(pg_current_snapshot()) AS x"
    " WHERE x::text::bigint = ANY(%s)"
)


def fall_asleep(cur) -> list[int]:
    """Set the flag; return the xids in flight once it is visible to all (one round trip)."""
    cur.execute(FALL_ASLEEP_SQL)
    return cur.fetchone()[0]


def still_in_flight(cur, xids: list[int]) -> list[int]:
    """Those of `xids` that a fresh snapshot still sees in flight."""
    if not xids:
        return []
    cur.execute(IN_FLIGHT_SQL, (xids,))
    return cur.fetchone()[0]
