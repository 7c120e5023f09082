"""The outbox written by the rules' triggers (db/trigger.sql, db/table_trigger.sql): take a batch,
turn it into changes, keep it deleted once published.

One drain is two round trips: `BEGIN; DELETE ... RETURNING` takes up to a batch of rows no other
listener holds (SKIP LOCKED) and returns them grouped per table and values (a busy window holds
thousands of rows and a few hundred distinct values: Postgres counts them, not Python), Kafka gets the
events, then COMMIT. The rows are deleted only in the drain's own transaction: other listeners skip
them meanwhile, and a rollback, a lost connection or a kill -9 gives every one of them back. So a row
disappears only after Kafka acknowledged it.
"""
from __future__ import annotations

from citycache.rules import Rules
from citycache.write.coalesce import Coalescer
from citycache.write.dbnames import FLAG, OUTBOX

# Commit time when Postgres tracks it (track_commit_timestamp=on, as our Postgres runs), else now.
_COMMIT_TIME = {
    "on": "coalesce(pg_xact_commit_timestamp(xmin), clock_timestamp())",
    "off": "clock_timestamp()",
}
# The outbox has no key and no index: rows are addressed by ctid, taken in physical order.
_TAKE_SQL = (
    "BEGIN; {flag}"
    f"WITH taken AS (DELETE FROM {OUTBOX} WHERE ctid = ANY(ARRAY("
    f"  SELECT ctid FROM {OUTBOX} LIMIT %(limit)s FOR UPDATE SKIP LOCKED))"
    "  RETURNING tbl, vals, extract(epoch FROM {commit_time})::float8 AS at)"
    " SELECT tbl, vals, min(at), max(at), count(*)::int FROM taken GROUP BY tbl, vals ORDER BY min(at)"
)
# Cleared in the drain's own round trip: a sequence is non-transactional, so writers see it at once.
AWAKE = f"SELECT setval('{FLAG}', 0); "
PENDING_SQL = f"SELECT EXISTS (SELECT FROM {OUTBOX})"
BACKLOG_SQL = f"SELECT count(*) FROM {OUTBOX}"


def take_sql(conn) -> tuple[str, str]:
    """The statements that take a batch: plain, and one that first marks the listener awake."""
    with conn.cursor() as cur:
        cur.execute("SHOW track_commit_timestamp")
        commit_time = _COMMIT_TIME.get(cur.fetchone()[0], "clock_timestamp()")
    return (_TAKE_SQL.format(flag="", commit_time=commit_time),
            _TAKE_SQL.format(flag=AWAKE, commit_time=commit_time))


Taken = tuple[str, list[str] | None, float, float, int]  # table, values, first and last commit, rows


def take(cur, sql: str, limit: int) -> list[Taken]:
    """Delete up to `limit` unheld rows in a new transaction, grouped per table and values, earliest
    first; COMMIT after Kafka acked, else ROLLBACK."""
    cur.execute(sql, {"limit": limit})
    return cur.fetchall()


def pending(cur) -> bool:
    """Rows in the outbox, including those another listener holds in a drain not yet committed."""
    cur.execute(PENDING_SQL)
    return cur.fetchone()[0]


def backlog(conn) -> int:
    """Outbox rows not yet acknowledged by Kafka (pg_listener deletes them after the ack)."""
    with conn.cursor() as cur:
        cur.execute(BACKLOG_SQL)
        return cur.fetchone()[0]


def to_changes(taken: list[Taken], rules: Rules) -> tuple[Coalescer, list[str]]:
    """The taken rows as one publish's changes; and the tables outside the rules (their rows are
    dropped: a trigger left behind, or a rule removed since `schema install`)."""
    batch, outside = Coalescer(), []
    for table, values, committed_at, last_committed_at, _rows in taken:
        rule = rules.rule_for(table)
        if rule is None:
            outside.append(table)
        elif values is None:
            batch.truncate(rule, committed_at, last_committed_at)
        elif len(values) != len(rule.columns):  # rendered from other rules: schema install not run
            outside.append(table)
        else:
            batch.change(rule, values, committed_at, last_committed_at)
    return batch, outside
