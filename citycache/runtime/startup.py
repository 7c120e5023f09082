"""What every program checks before it starts: its settings and the rules, the rules also against the
database when it answers. A bad one ends the process with one line on stderr and exit code 78
(EX_CONFIG): supervisord.conf counts 78 as an expected exit, so a bad rule is FATAL (or EXITED), never
a restart loop, and nothing was half-started."""
from __future__ import annotations

import functools
import logging
import sys

import psycopg2

from citycache import rules as rules_file
from citycache import tables
from citycache.rules import BadRules, Rules
from citycache.settings import Settings, SettingsError

log = logging.getLogger(__name__)
EX_CONFIG = 78
# How long a program waits for Postgres to say whether the rules' tables exist.
CHECK_CONNECT_TIMEOUT_S = 3


def checked_rules(settings: Settings, *, against_database: bool = True) -> Rules:
    """The rules file, read and checked; also against the database when it answers (a program that
    starts while Postgres is down checks the form only, and says so)."""
    found = rules_file.load(settings.invalidation_rules)
    if against_database:
        try:
            conn = psycopg2.connect(settings.database_url, connect_timeout=CHECK_CONNECT_TIMEOUT_S,
                                    application_name="city-cache rules check")
        except psycopg2.OperationalError as exc:
            log.warning("rules not checked against the database: it does not answer",
                        extra={"error": str(exc).strip().splitlines()[0] if str(exc).strip() else ""})
            return found
        try:
            conn.autocommit = True
            tables.describe(conn, found)
        finally:
            conn.close()
    return found


def refusing_bad_config(main):
    """Wraps a program's main(): a bad setting or rule is one line on stderr and exit code 78."""
    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (BadRules, SettingsError) as exc:
            print(exc.code if isinstance(exc.code, str) else str(exc), file=sys.stderr, flush=True)
            raise SystemExit(EX_CONFIG) from None
    return run
