"""The database pieces the system adds to an existing `city` table (`bin/cli schema install|uninstall`).

Only what invalidation needs: the outbox, the trigger function and its triggers. Never the table
`city` itself nor its rows (db/schema.sql and the seed are for a fresh development database). Each
part is an idempotent SQL file and the pieces it creates, each with a presence check and the
statement that removes it; a new capture mode (a publication, a replica identity) is one more part.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from citycache.write import replication

DB_DIR = Path(__file__).resolve().parent.parent / "db"


class SchemaError(Exception):
    """The database cannot take the pieces (no city table, for one)."""


@dataclass(frozen=True)
class Piece:
    name: str
    present: str  # SQL answering one boolean
    drop: str


@dataclass(frozen=True)
class Part:
    source: str  # where its SQL comes from, for the report
    sql: str  # creates every piece below and is safe to apply again
    pieces: tuple[Piece, ...]


def _trigger(name: str) -> Piece:
    return Piece(f"trigger {name} on city",
                 f"SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('city') AND tgname = '{name}')",
                 f"DROP TRIGGER IF EXISTS {name} ON city")


# db/trigger.sql's version suffix. A new version of the file may add pieces: list them here too
# (tests/integration/test_schema_command.py fails when install leaves one that uninstall does not remove).
VERSION = "v2"
FUNCTION = f"city_invalidate_{VERSION}"
TRIGGER = Part("db/trigger.sql", (DB_DIR / "trigger.sql").read_text(encoding="utf-8"), (
    Piece("table city_outbox", "SELECT to_regclass('city_outbox') IS NOT NULL", "DROP TABLE IF EXISTS city_outbox"),
    Piece("sequence city_listener_asleep", "SELECT to_regclass('city_listener_asleep') IS NOT NULL",
          "DROP SEQUENCE IF EXISTS city_listener_asleep"),
    Piece(f"function {FUNCTION}()", f"SELECT to_regprocedure('{FUNCTION}()') IS NOT NULL",
          f"DROP FUNCTION IF EXISTS {FUNCTION}()"),
    *(_trigger(f"city_invalidate_{event}_{VERSION}") for event in ("insert", "update", "delete", "truncate")),
))

# CAPTURE_MODE=logical reads the WAL: city in a publication, with a replica identity that carries the
# country code of a deleted row. pg_listener makes the same at start (citycache/write/replication.py), with
# its slot; uninstall drops an inactive slot too.
LOGICAL = Part("CAPTURE_MODE=logical (citycache/write/replication.py)", f"""BEGIN;
{replication.IDENTITY_SQL.strip()}
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = '{replication.PUBLICATION}') THEN
        CREATE PUBLICATION {replication.PUBLICATION} FOR TABLE city {replication.PUBLISHED_COLUMNS};
    END IF;
END $$;
COMMIT;
""", (
    # The index goes with it only if IDENTITY_SQL had to make it: a schema's own unique index stays.
    Piece(f"replica identity of city (a unique index on (id, countrycode); {replication.KEY_INDEX} if made for it)",
          "SELECT relreplident = 'i' FROM pg_class WHERE oid = 'city'::regclass",
          f"ALTER TABLE city REPLICA IDENTITY DEFAULT; DROP INDEX IF EXISTS {replication.KEY_INDEX}"),
    Piece(f"publication {replication.PUBLICATION}",
          f"SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = '{replication.PUBLICATION}')",
          f"DROP PUBLICATION IF EXISTS {replication.PUBLICATION}"),
))
SLOTS = "SELECT slot_name FROM pg_replication_slots WHERE plugin = 'pgoutput' AND NOT active AND database = current_database()"

# Triggers on city that notify city_updates but are not ours: trigger.sql replaces them (the seed's
# row-level trigger, older versions), so install says so.
OLDER_TRIGGERS = f"""
    SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE t.tgrelid = 'city'::regclass AND NOT t.tgisinternal
      AND p.prosrc LIKE '%city_updates%' AND p.proname <> '{FUNCTION}' ORDER BY 1"""


def parts(settings=None) -> list[Part]:
    """The parts the settings call for, in install order."""
    return [TRIGGER] + ([LOGICAL] if getattr(settings, "capture_mode", "notify") == "logical" else [])


def _one(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def _require_city(conn) -> None:
    if not _one(conn, "SELECT to_regclass('city') IS NOT NULL"):
        raise SchemaError("no table city in this database (DATABASE_URL): the pieces go on an existing city "
                          "table; for a fresh development database use `bin/cli load`")


def missing(conn, settings=None) -> list[str]:
    """Names of the pieces not present (what doctor reports)."""
    _require_city(conn)
    return [piece.name for part in parts(settings) for piece in part.pieces if not _one(conn, piece.present)]


def install(conn, settings=None, *, dry_run: bool = False) -> list[str]:
    """Apply each part that lacks a piece or has an older trigger to replace; return what it did."""
    _require_city(conn)
    report = []
    with conn.cursor() as cur:
        cur.execute(OLDER_TRIGGERS)
        older = [name for (name,) in cur.fetchall()]
    for part in parts(settings):
        absent = [piece.name for piece in part.pieces if not _one(conn, piece.present)]
        if not absent and not (older and part is TRIGGER):
            report += [f"present: {piece.name}" for piece in part.pieces]
            continue
        sql = part.sql
        if dry_run:
            report += [f"would create: {name}" for name in absent]
            report += [f"would replace: trigger {name} on city (notifies city_updates)" for name in older]
            report += [f"-- {part.source}", sql]
            continue
        with conn.cursor() as cur:
            cur.execute(sql)  # the file is one transaction of its own (BEGIN ... COMMIT)
        still = [piece.name for piece in part.pieces if not _one(conn, piece.present)]
        if still:
            raise SchemaError(f"{part.source} was applied but these are still missing: {', '.join(still)}")
        report += [f"created: {name}" if name in absent else f"present: {name}" for name in
                   (piece.name for piece in part.pieces)]
        report += [f"replaced: trigger {name} on city (it notified city_updates)" for name in older if part is TRIGGER]
    return report


def uninstall(conn, settings=None, *, dry_run: bool = False) -> list[str]:
    """Drop every piece that is present, triggers first, in one transaction; return what it did."""
    _require_city(conn)
    everything = [piece for part in (TRIGGER, LOGICAL) for piece in part.pieces]  # whatever the mode now
    present = [piece for piece in reversed(everything) if _one(conn, piece.present)]
    with conn.cursor() as cur:
        cur.execute(SLOTS)
        present = [Piece(f"replication slot {name}", "SELECT true", f"SELECT pg_drop_replication_slot('{name}')")
                   for (name,) in cur.fetchall()] + present
    if not present:
        return ["nothing to remove: none of the pieces is present"]
    notes = []
    if any(piece.name == "table city_outbox" for piece in present):
        waiting = _one(conn, "SELECT count(*) FROM city_outbox")
        if waiting:
            notes.append(f"note: city_outbox held {waiting} change(s) not yet sent to Kafka")
    if dry_run:
        return [f"{piece.drop};" for piece in present] + notes
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        for piece in present:
            cur.execute(piece.drop)
        cur.execute("COMMIT")
    return [f"dropped: {piece.name}" for piece in present] + notes
