"""The guarantees of DESIGN.md section 4 that are not fault scenarios, each against the real services."""
import signal
import subprocess
import sys
import threading

import pytest
import requests

from citycache.read.cache import CityCache
from citycache.read.cities import CITIES_SQL, fetch_cities, render_cities
from citycache.keys import cache_key, lease_key
from tests.burst import WriteBurst
from tests.support import ROOT, wait_until


def test_no_stale_set_after_an_invalidation_went_by(settings, redis, db, test_cities):
    """Reader misses and reads; writer commits and the invalidation passes; reader stores: refused."""
    test_cities("QQA", ("Alpha", 100))
    cache = CityCache(redis, settings.cache_ttl_seconds)

    state, token = cache.lease("QQA")  # the reader missed and holds the lease
    assert state == "lease"
    stale = render_cities(fetch_cities(db, "QQA"))  # ... and read the database
    with db.cursor() as cur:  # a writer commits; the real pipeline invalidates
        cur.execute("UPDATE city SET population = 5 WHERE countrycode = 'QQA'")
    wait_until(lambda: not redis.exists(lease_key("QQA")), timeout=10, message="the invalidation to cancel the lease")

    assert cache.store("QQA", token, stale) is False  # the late reader's old rows are refused
    assert not redis.exists(cache_key("QQA"))
    value, source = cache.read_through("QQA", lambda: render_cities(fetch_cities(db, "QQA")))
    assert (source, value) == ("db", b'[{"name":"Alpha","population":5}]')


def test_a_lease_holder_without_interference_stores(settings, redis, db, test_cities):
    test_cities("QQA", ("Alpha", 100))
    cache = CityCache(redis, settings.cache_ttl_seconds)
    state, token = cache.lease("QQA")
    assert cache.store("QQA", token, b"[1]") is True
    assert cache.lease("QQA") == ("hit", b"[1]")


@pytest.fixture
def query_counter(db):
    """How many times the cities query ran, across every gunicorn process (pg_stat_statements)."""
    with db.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def count() -> int:
        with db.cursor() as cur:
            cur.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
                        " WHERE query LIKE 'SELECT name, population FROM city WHERE countrycode = $1%%'")
            return int(cur.fetchone()[0])

    assert CITIES_SQL.startswith("SELECT name, population FROM city WHERE countrycode = %s")
    return count


def test_a_miss_storm_runs_one_query(base_url, db, test_cities, query_counter):
    # Enough rows that the one query takes a while: every other request arrives while it runs.
    test_cities("QQB", *[(f"Town {i}", i) for i in range(20000)])
    before = query_counter()
    barrier = threading.Barrier(48)
    answers = []

    def request():
        with requests.Session() as http:
            barrier.wait()
            response = http.get(f"{base_url}/cities/QQB", timeout=30)
            answers.append((response.status_code, len(response.json()["data"])))

    threads = [threading.Thread(target=request) for _ in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [(200, 20000)] * 48
    assert query_counter() - before == 1


def test_truncate_invalidates_every_cached_country(base_url, http, redis, settings):
    """The seed's --reload is TRUNCATE + COPY in one transaction: every cities_* key must go."""
    for code in ("BGR", "DEU", "FRA"):
        assert http.get(f"{base_url}/cities/{code}").status_code == 200
    assert redis.exists(*[cache_key(c) for c in ("BGR", "DEU", "FRA")]) == 3
    redis.set(cache_key("XYZ"), b"[]")  # a key for a code the reload does not touch
    subprocess.run([sys.executable, "-m", "ops.seed", "--reload", "--skip-images"], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    wait_until(lambda: not list(redis.scan_iter(match="cities_*")), timeout=15,
               message="TRUNCATE's invalidate_all to remove every cities_* key")


def test_two_pg_listeners_at_once_lose_nothing(settings, base_url, test_cities, app_log):
    """A second listener drains the same outbox (FOR UPDATE SKIP LOCKED): no loss, at most a duplicate."""
    from citycache.runtime.clients import pg_connect, redis_client
    from citycache.read.consistency import find_mismatches

    codes = ["QQA", "QQB", "QQC", "QQF"]
    for code in codes:
        test_cities(code, *[(f"{code}-{i}", i) for i in range(3)])
    second = subprocess.Popen([sys.executable, "-m", "workers.pg_listener"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with WriteBurst(settings.database_url, base_url, codes, write_interval=0.002) as burst:
            burst.await_writes(400)
    finally:
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=10)
    assert second.returncode == 0
    assert '"msg": "published"' in output  # the second listener really took a share
    conn = pg_connect(settings, autocommit=True)
    try:
        wait_until(lambda: _backlog(conn) == 0, timeout=30, message="the outbox to drain")
        wait_until(lambda: not find_mismatches(redis_client(settings), conn)[0], timeout=30,
                   message="every cached key to match the database")
    finally:
        conn.close()


def _backlog(conn) -> int:
    from citycache.pipeline import outbox_backlog

    return outbox_backlog(conn)
