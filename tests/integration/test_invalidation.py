"""A change to `city` by anyone (here: plain SQL) empties the matching cache key, end to end."""
import subprocess

from citycache.write.dbnames import OUTBOX, TRIGGERS
from tests.support import ROOT, wait_until


def warm(http, base_url, code):
    """Fill the cache for `code` and prove the next read is a hit."""
    http.get(f"{base_url}/cities/{code}")
    response = http.get(f"{base_url}/cities/{code}")
    assert response.json()["source"] == "cache"
    return response.json()["data"]


def fresh_read(http, base_url, code, expected_data):
    """Await the invalidation as a user sees it: the API answering the new rows from the database."""
    def shows_new_rows():
        body = http.get(f"{base_url}/cities/{code}").json()
        return body if body.get("data") == expected_data else None

    return wait_until(shows_new_rows, timeout=10, message=f"GET /cities/{code} to show {expected_data}")


def test_seed_walkthrough_verbatim(base_url, http, settings, db):
    """curl BGR; psql UPDATE Dobric to 999999; curl BGR shows 999999 from the database."""
    with db.cursor() as cur:
        cur.execute("SELECT population FROM city WHERE name = 'Dobric'")
        (original,) = cur.fetchone()
    try:
        warm(http, base_url, "BGR")
        subprocess.run(["psql", settings.database_url, "-c",
                        "UPDATE city SET population = 999999 WHERE name = 'Dobric';"],
                       check=True, capture_output=True, timeout=30)

        def dobric_updated():
            body = http.get(f"{base_url}/cities/BGR").json()
            return body if {"name": "Dobric", "population": 999999} in body["data"] else None

        body = wait_until(dobric_updated, timeout=10, message="Dobric to show 999999")
        assert body["source"] == "db"
    finally:
        with db.cursor() as cur:
            cur.execute("UPDATE city SET population = %s WHERE name = 'Dobric'", (original,))


def test_update_invalidates(base_url, http, db, test_cities):
    test_cities("QQA", ("Alpha", 100), ("Beta", 50))
    warm(http, base_url, "QQA")
    with db.cursor() as cur:
        cur.execute("UPDATE city SET population = 10 WHERE countrycode = 'QQA' AND name = 'Alpha'")
    body = fresh_read(http, base_url, "QQA", [{"name": "Beta", "population": 50},
                                              {"name": "Alpha", "population": 10}])
    assert body["source"] == "db"


def test_insert_invalidates(base_url, http, test_cities):
    test_cities("QQA", ("Alpha", 100))
    warm(http, base_url, "QQA")
    test_cities("QQA", ("Newcomer", 500))
    fresh_read(http, base_url, "QQA", [{"name": "Newcomer", "population": 500},
                                       {"name": "Alpha", "population": 100}])


def test_delete_invalidates(base_url, http, db, test_cities):
    test_cities("QQA", ("Alpha", 100), ("Doomed", 5))
    warm(http, base_url, "QQA")
    with db.cursor() as cur:
        cur.execute("DELETE FROM city WHERE countrycode = 'QQA' AND name = 'Doomed'")
    fresh_read(http, base_url, "QQA", [{"name": "Alpha", "population": 100}])


def test_insert_into_a_cached_empty_country_invalidates(base_url, http, test_cities):
    assert http.get(f"{base_url}/cities/QQE").status_code == 404
    test_cities("QQE", ("Founded", 1))
    fresh_read(http, base_url, "QQE", [{"name": "Founded", "population": 1}])


def test_moving_a_city_invalidates_both_countries(base_url, http, db, test_cities):
    test_cities("QQA", ("Mover", 100), ("Stayer", 10))
    test_cities("QQB", ("Local", 50))
    warm(http, base_url, "QQA")
    warm(http, base_url, "QQB")
    with db.cursor() as cur:
        cur.execute("UPDATE city SET countrycode = 'QQB' WHERE countrycode = 'QQA' AND name = 'Mover'")
    fresh_read(http, base_url, "QQA", [{"name": "Stayer", "population": 10}])
    fresh_read(http, base_url, "QQB", [{"name": "Mover", "population": 100}, {"name": "Local", "population": 50}])


def test_one_statement_writes_one_outbox_row_per_code(settings):
    """A bulk UPDATE of many rows costs one outbox row per distinct code, not one per row."""
    import psycopg2

    with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT countrycode) FROM city WHERE countrycode IN ('BGR', 'DEU')")
        rows, codes = cur.fetchone()
        cur.execute("UPDATE city SET population = population WHERE countrycode IN ('BGR', 'DEU')")
        assert cur.rowcount == rows > 10
        # Our own uncommitted outbox rows are visible to us (and hidden from the listener): the rows
        # this transaction wrote.
        cur.execute(f"SELECT tbl, vals FROM {OUTBOX} WHERE xmin = pg_current_xact_id()::xid ORDER BY vals")
        assert cur.fetchall() == [("city", ["BGR"]), ("city", ["DEU"])] and codes == 2
        conn.rollback()


def test_schema_install_is_idempotent_and_replaces_a_seed_trigger(settings, db):
    with db.cursor() as cur:
        cur.execute("""
            CREATE OR REPLACE FUNCTION seed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_notify('city_updates', NEW.countrycode); RETURN NEW; END $$;
            CREATE TRIGGER seed_city_notify AFTER UPDATE ON city FOR EACH ROW EXECUTE FUNCTION seed_notify();
        """)
    for _ in range(2):
        subprocess.run([str(ROOT / "bin" / "cli"), "schema", "install"], check=True, capture_output=True, timeout=60)
    with db.cursor() as cur:
        cur.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'city'::regclass AND NOT tgisinternal"
                    " ORDER BY tgname")
        triggers = [name for (name,) in cur.fetchall()]
        cur.execute("DROP FUNCTION seed_notify()")
    assert triggers == sorted(TRIGGERS)


def test_a_truncates_wipe_matches_its_prefix_literally(redis):
    """A prefix with glob characters wipes the keys (and leases) under it, not keys that only its glob
    would match: `t*[q]_` unescaped would also take `tzq_1`."""
    from citycache.rules import lease_key
    from citycache.write.deletes import wipe

    under, lookalike = "t*[q]_1", "tzq_1"
    keys = [under, lease_key(under), lookalike, lease_key(lookalike)]
    for key in keys:
        redis.set(key, b"v", ex=60)
    try:
        assert wipe(redis, ["t*[q]_"]) == 2
        assert [bool(redis.exists(key)) for key in keys] == [False, False, True, True]
    finally:
        redis.delete(*keys)
