"""The database pieces the system adds to an existing `city` table (`bin/cli schema install|uninstall`).

Only what invalidation needs: the outbox, the trigger function and its triggers. Never the table
`city` itself nor its rows (db/schema.sql and the seed are for a fresh development database). Each
part is an idempotent SQL file and the pieces it creates, each with a presence check and the
statement that removes it; a new capture mode (a publication, a replica identity) is one more part.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    file: str  # under db/; creates every piece below and is safe to apply again
    pieces: tuple[Piece, ...]


def _trigger(name: str) -> Piece:
    return Piece(f"trigger {name} on city",
                 f"SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('city') AND tgname = '{name}')",
                 f"DROP TRIGGER IF EXISTS {name} ON city")


# db/trigger.sql's version suffix. A new version of the file may add pieces: list them here too
# (tests/integration/test_schema_command.py fails when install leaves one that uninstall does not remove).
VERSION = "v1"
FUNCTION = f"city_invalidate_{VERSION}"
TRIGGER = Part("trigger.sql", (
    Piece("table city_outbox", "SELECT to_regclass('city_outbox') IS NOT NULL", "DROP TABLE IF EXISTS city_outbox"),
    Piece(f"function {FUNCTION}()", f"SELECT to_regprocedure('{FUNCTION}()') IS NOT NULL",
          f"DROP FUNCTION IF EXISTS {FUNCTION}()"),
    *(_trigger(f"city_invalidate_{event}_{VERSION}") for event in ("insert", "update", "delete", "truncate")),
))

# Triggers on city that notify city_updates but are not ours: trigger.sql replaces them (the seed's
# row-level trigger, older versions), so install says so.
OLDER_TRIGGERS = f"""
    SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE t.tgrelid = 'city'::regclass AND NOT t.tgisinternal
      AND p.prosrc LIKE '%city_updates%' AND p.proname <> '{FUNCTION}' ORDER BY 1"""


def parts(settings=None) -> list[Part]:
    """The parts the settings call for, in install order (a capture mode's publication and replica
    identity would be one more Part here, chosen by the settings)."""
    return [TRIGGER]


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
        sql = (DB_DIR / part.file).read_text(encoding="utf-8")
        if dry_run:
            report += [f"would create: {name}" for name in absent]
            report += [f"would replace: trigger {name} on city (notifies city_updates)" for name in older]
            report += [f"-- db/{part.file}", sql]
            continue
        with conn.cursor() as cur:
            cur.execute(sql)  # the file is one transaction of its own (BEGIN ... COMMIT)
        still = [piece.name for piece in part.pieces if not _one(conn, piece.present)]
        if still:
            raise SchemaError(f"db/{part.file} was applied but these are still missing: {', '.join(still)}")
        report += [f"created: {name}" if name in absent else f"present: {name}" for name in
                   (piece.name for piece in part.pieces)]
        report += [f"replaced: trigger {name} on city (it notified city_updates)" for name in older]
    return report


def uninstall(conn, settings=None, *, dry_run: bool = False) -> list[str]:
    """Drop every piece that is present, triggers first, in one transaction; return what it did."""
    _require_city(conn)
    everything = [piece for part in parts(settings) for piece in part.pieces]
    present = [piece for piece in reversed(everything) if _one(conn, piece.present)]
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
