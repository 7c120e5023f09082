"""`bin/cli schema install|uninstall` on an existing database that has a city table and its own data."""
from __future__ import annotations

import os
import subprocess
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from tests.support import ROOT

DATABASE = "schema_cmd_test"
# An operator's own city table: the world shape, none of our constraints, rows of its own.
EXISTING = """
    CREATE TABLE city (id serial PRIMARY KEY, name text, countrycode char(3) NOT NULL, district text, population int);
    INSERT INTO city (name, countrycode, district, population)
        SELECT 'Town ' || i, (ARRAY['BGR', 'NLD', 'FRA'])[1 + i % 3], 'D', i * 100 FROM generate_series(1, 500) i;
"""
# What a pre-existing notify-per-row trigger (the seed's) looks like: install replaces it.
SEED_TRIGGER = """
    CREATE FUNCTION notify_city_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('city_updates', NEW.countrycode); RETURN NEW; END $$;
    CREATE TRIGGER city_change AFTER INSERT OR UPDATE ON city FOR EACH ROW EXECUTE FUNCTION notify_city_change();
"""
CATALOG = """
    SELECT 'relation ' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
    UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
    UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'publication ' || pubname FROM pg_publication
    UNION ALL SELECT 'replica identity ' || relreplident::text FROM pg_class WHERE oid = to_regclass('city') ORDER BY 1
"""


@pytest.fixture
def existing_db(settings):
    """A database of the test stack's Postgres with an operator's city table and no pieces of ours."""
    admin = psycopg2.connect(settings.database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {DATABASE}")
    url = urlunsplit(urlsplit(settings.database_url)._replace(path=f"/{DATABASE}"))
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(EXISTING)
    yield url, conn
    conn.close()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    admin.close()


def schema(url: str, *args: str, mode: str = "notify") -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "cli"), "schema", *args],
                          env={**os.environ, "DATABASE_URL": url, "CAPTURE_MODE": mode},
                          capture_output=True, text=True, timeout=60)


def query(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def rows(conn):
    return query(conn, "SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM city c")


def test_install_adds_the_pieces_says_so_and_leaves_the_rows(existing_db):
    url, conn = existing_db
    before = rows(conn)
    first = schema(url, "install")
    assert first.returncode == 0, first.stderr
    assert "created: table city_outbox" in first.stdout and "created: trigger city_invalidate_update_v2 on city" \
        in first.stdout, first.stdout
    assert rows(conn) == before
    with conn.cursor() as cur:  # the pieces work: a write leaves one outbox row per code
        cur.execute("UPDATE city SET population = population + 1 WHERE countrycode IN ('BGR', 'NLD')")
    assert query(conn, "SELECT code FROM city_outbox ORDER BY code") == [("BGR",), ("NLD",)]


def test_install_twice_changes_nothing_the_second_time(existing_db):
    url, conn = existing_db
    assert schema(url, "install").returncode == 0
    catalog = query(conn, CATALOG)
    again = schema(url, "install")
    assert again.returncode == 0 and "created" not in again.stdout, again.stdout
    assert again.stdout.count("present: ") == 7
    assert query(conn, CATALOG) == catalog


def test_dry_run_prints_the_sql_and_changes_nothing(existing_db):
    url, conn = existing_db
    catalog = query(conn, CATALOG)
    dry = schema(url, "install", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would create: table city_outbox" in dry.stdout and "CREATE TABLE IF NOT EXISTS city_outbox" in dry.stdout
    assert query(conn, CATALOG) == catalog
    assert schema(url, "install").returncode == 0
    installed = query(conn, CATALOG)
    dry = schema(url, "uninstall", "--dry-run")
    assert "DROP TABLE IF EXISTS city_outbox;" in dry.stdout, dry.stdout
    assert query(conn, CATALOG) == installed


def test_uninstall_removes_exactly_what_install_added(existing_db):
    url, conn = existing_db
    before, data = query(conn, CATALOG), rows(conn)
    assert schema(url, "install").returncode == 0
    assert query(conn, CATALOG) != before
    out = schema(url, "uninstall")
    assert out.returncode == 0 and "dropped: table city_outbox" in out.stdout, out.stdout + out.stderr
    assert query(conn, CATALOG) == before
    assert rows(conn) == data
    assert "nothing to remove" in schema(url, "uninstall").stdout


def test_install_replaces_an_older_notifying_trigger_and_says_so(existing_db):
    url, conn = existing_db
    with conn.cursor() as cur:
        cur.execute(SEED_TRIGGER)
    out = schema(url, "install")
    assert "replaced: trigger city_change on city" in out.stdout, out.stdout
    assert ("trigger city_change",) not in query(conn, CATALOG)


def test_a_database_without_a_city_table_is_refused_by_name(existing_db):
    url, conn = existing_db
    with conn.cursor() as cur:
        cur.execute("DROP TABLE city")
    out = schema(url, "install")
    assert out.returncode == 2 and "no table city" in out.stderr and "DATABASE_URL" in out.stderr, out.stderr


def test_logical_mode_adds_the_publication_and_replica_identity_and_uninstall_takes_them(existing_db):
    url, conn = existing_db
    before, data = query(conn, CATALOG), rows(conn)
    out = schema(url, "install", mode="logical")
    assert out.returncode == 0, out.stderr
    assert "created: publication city_invalidation" in out.stdout and "created: replica identity" in out.stdout
    assert query(conn, "SELECT relreplident FROM pg_class WHERE oid = 'city'::regclass") == [("i",)]
    assert rows(conn) == data
    assert "created" not in schema(url, "install", mode="logical").stdout
    out = schema(url, "uninstall")  # whatever the mode now: every piece that is there goes
    assert "dropped: publication city_invalidation" in out.stdout, out.stdout
    assert query(conn, CATALOG) == before


def test_logical_mode_uses_the_schemas_own_unique_index_as_identity_and_uninstall_keeps_it(existing_db):
    """A city with a unique index on (countrycode, id), as db/schema.sql makes it: logical mode adds no
    index of its own (a third index slows every non-HOT update), and uninstall leaves the schema's."""
    url, conn = existing_db
    with conn.cursor() as cur:
        cur.execute("CREATE UNIQUE INDEX city_countrycode_idx ON city (countrycode, id)")
    before = query(conn, CATALOG)
    assert schema(url, "install", mode="logical").returncode == 0
    assert query(conn, "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'city'::regclass"
                       " AND indisreplident") == [("city_countrycode_idx",)]
    assert ("relation city_id_countrycode_key",) not in query(conn, CATALOG)
    out = schema(url, "uninstall")
    assert out.returncode == 0, out.stderr
    assert query(conn, CATALOG) == before
