"""The outbox written by db/trigger.sql: take a batch, turn it into events, keep it deleted once published.

One drain is two round trips: `BEGIN; DELETE ... RETURNING` takes up to a batch of rows no other
listener holds (SKIP LOCKED) and returns them grouped per code (a busy window holds thousands of rows
and a few hundred codes: Postgres counts them, not Python), Kafka gets the events, then COMMIT. The rows are deleted only in the
drain's own transaction: other listeners skip them meanwhile, and a rollback, a lost connection or a
kill -9 gives every one of them back. So a row disappears only after Kafka acknowledged it.
"""
from __future__ import annotations

from citycache.events import Invalidation, parse_code

# Commit time when Postgres tracks it (track_commit_timestamp=on, as our Postgres runs), else now.
_COMMIT_TIME = {
    "on": "coalesce(pg_xact_commit_timestamp(xmin), clock_timestamp())",
    "off": "clock_timestamp()",
}
# The outbox has no key and no index: rows are addressed by ctid, taken in physical order.
_TAKE_SQL = (
    "BEGIN; {flag}"
    "WITH taken AS (DELETE FROM city_outbox WHERE ctid = ANY(ARRAY("
    "  SELECT ctid FROM city_outbox LIMIT %(limit)s FOR UPDATE SKIP LOCKED))"
    "  RETURNING code, extract(epoch FROM {commit_time})::float8 AS at)"
    " SELECT code, min(at), max(at), count(*)::int FROM taken GROUP BY code ORDER BY min(at)"
)
# Cleared in the drain's own round trip: a sequence is non-transactional, so writers see it at once.
AWAKE = "SELECT setval('city_listener_asleep', 0); "
PENDING_SQL = "SELECT EXISTS (SELECT FROM city_outbox)"


def take_sql(conn) -> tuple[str, str]:
    """The statements that take a batch: plain, and one that first marks the listener awake."""
    with conn.cursor() as cur:
        cur.execute("SHOW track_commit_timestamp")
        commit_time = _COMMIT_TIME.get(cur.fetchone()[0], "clock_timestamp()")
    return (_TAKE_SQL.format(flag="", commit_time=commit_time),
            _TAKE_SQL.format(flag=AWAKE, commit_time=commit_time))


Taken = tuple[str, float, float, int]  # a code, its first and last commit time, how many rows


def take(cur, sql: str, limit: int) -> list[Taken]:
    """Delete up to `limit` unheld rows in a new transaction, grouped per code, earliest first;
    COMMIT after Kafka acked, else ROLLBACK."""
    cur.execute(sql, {"limit": limit})
    return cur.fetchall()


def pending(cur) -> bool:
    """Rows in the outbox, including those another listener holds in a drain not yet committed."""
    cur.execute(PENDING_SQL)
    return cur.fetchone()[0]


def to_events(taken: list[Taken]) -> tuple[list[Invalidation], list[str]]:
    """One event per code (first and last commit time it covers), in the order taken; and bad codes.
    Codes that differ only as stored ('bgr ', 'BGR') become one event."""
    by_code: dict[str, Invalidation] = {}
    bad: list[str] = []
    for raw_code, committed_at, last_committed_at, _rows in taken:
        try:
            code = parse_code(raw_code.strip())
        except ValueError:
            bad.append(raw_code)
            continue
        seen = by_code.get(code)
        if seen is None:
            by_code[code] = Invalidation(code, committed_at=committed_at, last_committed_at=last_committed_at)
        else:
            by_code[code] = Invalidation(code, committed_at=min(seen.committed_at, committed_at),
                                         last_committed_at=max(seen.last_committed_at, last_committed_at))
    return list(by_code.values()), bad
