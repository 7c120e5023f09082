"""Compare every cached country with the database: `python -m ops.consistency`.

Prints each mismatch and the pipeline's backlog; exits 1 if any cached key disagrees with the
database, 0 when all agree. The fault tests run it after every failure and recovery.
"""
from __future__ import annotations

import sys

from citycache.clients import pg_connect, redis_client
from citycache.consistency import find_mismatches
from citycache.pipeline import consumer_lag, outbox_backlog
from citycache.settings import get_settings


def main() -> int:
    settings = get_settings()
    conn = pg_connect(settings, autocommit=True, application_name="consistency")
    try:
        mismatches, checked = find_mismatches(redis_client(settings), conn)
        backlog = outbox_backlog(conn)
    finally:
        conn.close()
    for mismatch in mismatches:
        print(mismatch.describe())
    print(f"{checked} cached countries checked, {len(mismatches)} mismatched; "
          f"outbox backlog {backlog}, consumer lag {consumer_lag(settings)}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
