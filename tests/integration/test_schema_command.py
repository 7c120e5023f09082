"""`bin/cli schema install|uninstall` on an existing database that has a city table and its own data,
with rules of its own (INVALIDATION_RULES): city alone, then more."""
from __future__ import annotations

import os
import subprocess
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from citycache.write.dbnames import OUTBOX, TRIGGERS, function_name
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


CITY_RULE = '[[rule]]\ntable = "city"\nkeys = ["cities_{countrycode}"]\n'
PIECES = 2 + 5  # the outbox and the flag; per table a function and four triggers


@pytest.fixture(autouse=True)
def city_rules(tmp_path, monkeypatch):
    """The operator's rules: city alone (the shipped file names tables this database does not have)."""
    path = tmp_path / "invalidation.toml"
    path.write_text(CITY_RULE)
    monkeypatch.setenv("INVALIDATION_RULES", str(path))
    return path


def schema(url: str, *args: str, mode: str = "notify", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "cli"), "schema", *args],
                          env={**os.environ, "DATABASE_URL": url, "CAPTURE_MODE": mode, **env},
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
    assert f"created: table {OUTBOX}" in first.stdout and "created: trigger citycache_invalidate_update_v3 on city" \
        in first.stdout, first.stdout
    assert rows(conn) == before
    with conn.cursor() as cur:  # the pieces work: a write leaves one outbox row per code
        cur.execute("UPDATE city SET population = population + 1 WHERE countrycode IN ('BGR', 'NLD')")
    assert query(conn, f"SELECT tbl, vals FROM {OUTBOX} ORDER BY vals") == [("city", ["BGR"]), ("city", ["NLD"])]


def test_install_twice_changes_nothing_the_second_time(existing_db):
    url, conn = existing_db
    assert schema(url, "install").returncode == 0
    catalog = query(conn, CATALOG)
    again = schema(url, "install")
    assert again.returncode == 0 and "created" not in again.stdout, again.stdout
    assert again.stdout.count("present: ") == PIECES
    assert query(conn, CATALOG) == catalog


def test_dry_run_prints_the_sql_and_changes_nothing(existing_db):
    url, conn = existing_db
    catalog = query(conn, CATALOG)
    dry = schema(url, "install", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would create: table {OUTBOX}" in dry.stdout and f'CREATE TABLE IF NOT EXISTS "public"."{OUTBOX}"' in dry.stdout
    assert f'CREATE OR REPLACE FUNCTION "{function_name("city")}"()' in dry.stdout, dry.stdout
    assert query(conn, CATALOG) == catalog
    assert schema(url, "install").returncode == 0
    installed = query(conn, CATALOG)
    dry = schema(url, "uninstall", "--dry-run")
    assert f"DROP TABLE IF EXISTS {OUTBOX};" in dry.stdout, dry.stdout
    assert query(conn, CATALOG) == installed


def test_uninstall_removes_exactly_what_install_added(existing_db):
    url, conn = existing_db
    before, data = query(conn, CATALOG), rows(conn)
    assert schema(url, "install").returncode == 0
    assert query(conn, CATALOG) != before
    out = schema(url, "uninstall")
    assert out.returncode == 0 and f"dropped: table {OUTBOX}" in out.stdout, out.stdout + out.stderr
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


def test_a_database_without_a_rules_table_is_refused_by_name(existing_db):
    url, conn = existing_db
    with conn.cursor() as cur:
        cur.execute("DROP TABLE city")
    out = schema(url, "install")
    assert out.returncode == 2 and "no table city" in out.stderr and "DATABASE_URL" in out.stderr, out.stderr


def test_a_rule_naming_a_missing_column_is_refused_by_name_and_nothing_is_installed(existing_db, city_rules):
    url, conn = existing_db
    before = query(conn, CATALOG)
    city_rules.write_text('[[rule]]\ntable = "city"\nkeys = ["cities_{countrycode}", "town_{citycode}"]\n')
    out = schema(url, "install")
    assert out.returncode == 2 and "{citycode}" in out.stderr and "rule 1 (table city)" in out.stderr, out.stderr
    assert query(conn, CATALOG) == before


def test_a_table_added_to_the_rules_gets_its_triggers_and_one_removed_loses_them(existing_db, city_rules):
    url, conn = existing_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE shop (id int PRIMARY KEY, city_id int NOT NULL, name text)")
    assert schema(url, "install").returncode == 0
    city_rules.write_text(CITY_RULE + '[[rule]]\ntable = "shop"\nkeys = ["shops_{city_id}", "shop_{id}"]\n')
    out = schema(url, "install")
    assert out.returncode == 0 and "created: trigger citycache_invalidate_insert_v3 on shop" in out.stdout, out.stdout
    with conn.cursor() as cur:  # one row per distinct (city_id, id), in the rule's column order
        cur.execute("INSERT INTO shop VALUES (1, 7, 'a'), (2, 7, 'b')")
    assert query(conn, f"SELECT vals FROM {OUTBOX} WHERE tbl = 'shop' ORDER BY vals") == [(["7", "1"],), (["7", "2"],)]
    city_rules.write_text(CITY_RULE)
    out = schema(url, "install")
    assert "removed: trigger citycache_invalidate_insert_v3 on shop (no longer in the rules)" in out.stdout, out.stdout
    assert query(conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'shop'::regclass") == [(0,)]
    assert query(conn, f"SELECT to_regprocedure('{function_name('shop')}()') IS NULL") == [(True,)]


def test_values_reach_the_outbox_as_the_text_a_key_is_made_of(existing_db, city_rules):
    """char(n) without its padding; values equal by their type but written differently (numeric's 1.0 and
    1.00, citext's cases) stay apart, since their keys differ; a row that moved gives both places."""
    url, conn = existing_db
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS citext")
        cur.execute("CREATE TABLE part (id int PRIMARY KEY, bin char(5) NOT NULL, size numeric NOT NULL, "
                    "tag citext NOT NULL)")
    city_rules.write_text(CITY_RULE + '[[rule]]\ntable = "part"\nkeys = ["bin_{bin}", "part_{size}_{tag}"]\n')
    assert schema(url, "install").returncode == 0
    with conn.cursor() as cur:
        cur.execute("INSERT INTO part VALUES (1, 'A1', 1.0, 'Red'), (2, 'A1', 1.00, 'Red'), (3, 'A1', 2, 'Red'), "
                    "(4, 'A1', 2, 'RED'), (5, 'A1', 2, 'RED')")
        cur.execute("UPDATE part SET bin = 'B2' WHERE id = 1")
    assert sorted(vals for vals, in query(conn, f"SELECT vals FROM {OUTBOX} WHERE tbl = 'part'")) == [
        ["A1", "1.0", "Red"], ["A1", "1.0", "Red"], ["A1", "1.00", "Red"], ["A1", "2", "RED"], ["A1", "2", "Red"],
        ["B2", "1.0", "Red"]]


def test_a_rule_whose_columns_changed_gets_its_function_rendered_anew(existing_db, city_rules):
    url, conn = existing_db
    assert schema(url, "install").returncode == 0
    city_rules.write_text('[[rule]]\ntable = "city"\nkeys = ["cities_{countrycode}", "district_{countrycode}_{district}"]\n')
    out = schema(url, "install")
    assert out.returncode == 0 and "created: function" in out.stdout and "(countrycode, district)" in out.stdout, out.stdout
    with conn.cursor() as cur:
        cur.execute("UPDATE city SET population = 0 WHERE id = 1")
    assert query(conn, f"SELECT vals FROM {OUTBOX}") == [(["NLD", "D"],)]


def test_version_2_is_replaced_and_its_pending_changes_move_into_the_new_outbox(existing_db):
    """A database that ran the version before the rules: its triggers on city, its function, its outbox
    with changes not yet sent, its flag. Install swaps them in one transaction and keeps the changes."""
    url, conn = existing_db
    with conn.cursor() as cur:
        cur.execute("""
            CREATE TABLE city_outbox (code text NOT NULL);
            INSERT INTO city_outbox VALUES ('BGR'), ('*');
            CREATE SEQUENCE city_listener_asleep MINVALUE 0 MAXVALUE 1 START 1;
            CREATE FUNCTION city_invalidate_v2() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO city_outbox VALUES ('X'); PERFORM pg_notify('city_updates', 'X'); RETURN NULL; END $$;
            CREATE TRIGGER city_invalidate_update_v2 AFTER UPDATE ON city FOR EACH STATEMENT
                EXECUTE FUNCTION city_invalidate_v2();""")
    out = schema(url, "install")
    assert out.returncode == 0 and "replaced: version 2's city_outbox" in out.stdout, out.stdout
    assert query(conn, f"SELECT tbl, vals FROM {OUTBOX} ORDER BY vals NULLS LAST") == [("city", ["BGR"]), ("city", None)]
    assert query(conn, "SELECT to_regclass('city_outbox'), to_regclass('city_listener_asleep'),"
                       " to_regprocedure('city_invalidate_v2()')") == [(None, None, None)]
    assert sorted(name for (name,) in query(conn, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'city'::regclass"
                                                   " AND NOT tgisinternal")) == sorted(TRIGGERS)


def test_logical_mode_adds_the_publication_and_replica_identity_and_uninstall_takes_them(existing_db):
    url, conn = existing_db
    before, data = query(conn, CATALOG), rows(conn)
    out = schema(url, "install", mode="logical")
    assert out.returncode == 0, out.stderr
    assert "created: publication city_invalidation of city" in out.stdout and "created: replica identity" in out.stdout
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
