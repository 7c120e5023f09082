"""The outbox written by db/trigger.sql: claim a batch, turn it into events, delete it once published."""
from __future__ import annotations

from citycache.events import Invalidation, parse_code

# Commit time when Postgres tracks it (track_commit_timestamp=on), else the time the trigger ran.
_COMMIT_TIME = {
    "on": "coalesce(pg_xact_commit_timestamp(xmin), created_at)",
    "off": "created_at",
}
_CLAIM_SQL = (
    "SELECT id, code, extract(epoch FROM {commit_time})::float8 FROM city_outbox"
    " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
)


def claim_sql(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW track_commit_timestamp")
        setting = cur.fetchone()[0]
    return _CLAIM_SQL.format(commit_time=_COMMIT_TIME.get(setting, "created_at"))


def claim(cur, sql: str, limit: int) -> list[tuple[int, str, float]]:
    """Lock up to `limit` rows that no other listener holds (call inside a transaction)."""
    cur.execute(sql, (limit,))
    return cur.fetchall()


def delete(cur, ids: list[int]) -> None:
    cur.execute("DELETE FROM city_outbox WHERE id = ANY(%s)", (ids,))


def to_events(rows: list[tuple[int, str, float]]) -> tuple[list[Invalidation], list[str]]:
    """One event per distinct code (newest id, earliest commit), in first-seen order; and bad codes."""
    by_code: dict[str, Invalidation] = {}
    bad: list[str] = []
    for row_id, raw_code, committed_at in rows:
        try:
            code = parse_code(raw_code.strip())
        except ValueError:
            bad.append(raw_code)
            continue
        seen = by_code.get(code)
        if seen is None:
            by_code[code] = Invalidation(code, row_id, committed_at)
        else:
            by_code[code] = Invalidation(code, max(seen.event_id, row_id), min(seen.committed_at, committed_at))
    return list(by_code.values()), bad
