"""The guarantees of DESIGN.md section 4 that are not fault scenarios, against the running stack (no stale set
and the miss storm, for every rule in both modes, are in tests/faults/test_capture_modes.py)."""
import signal
import subprocess
import sys

from citycache.read.cache import LeasedCache
from citycache.read.cities import key as cache_key
from citycache.read.countries import key as country_key
from tests.burst import WriteBurst
from tests.support import ROOT, wait_until


def test_a_lease_holder_without_interference_stores(settings, redis, db, test_cities):
    test_cities("QQA", ("Alpha", 100))
    cache = LeasedCache(redis, settings.cache_ttl_seconds)
    state, token = cache.lease(cache_key("QQA"))
    assert cache.store(cache_key("QQA"), token, b"[1]") is True
    assert cache.lease(cache_key("QQA")) == ("hit", b"[1]")


def test_the_seeds_reload_invalidates_every_cached_city_and_country(base_url, http, redis, settings):
    """The seed's --reload is TRUNCATE + COPY of city, then of country and countrylanguage, one
    transaction each: every cities_* and country_* key must go."""
    for code in ("BGR", "DEU", "FRA"):
        assert http.get(f"{base_url}/cities/{code}").status_code == 200
        assert http.get(f"{base_url}/countries/{code}").status_code == 200
    assert redis.exists(*[key(c) for c in ("BGR", "DEU", "FRA") for key in (cache_key, country_key)]) == 6
    redis.set(cache_key("XYZ"), b"[]")  # keys of a code the reload does not touch
    redis.set(country_key("XYZ"), b"null")
    subprocess.run([sys.executable, "-m", "ops.seed", "--reload", "--skip-images"], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    wait_until(lambda: not list(redis.scan_iter(match="cities_*")) and not list(redis.scan_iter(match="country_*")),
               timeout=15, message="the TRUNCATEs' invalidate_all to remove every cities_* and country_* key")
    body = http.get(f"{base_url}/countries/BGR").json()
    assert body["data"]["capital"] == "Sofia"  # the reload pointed the capital at the renumbered row


def test_two_pg_listeners_at_once_lose_nothing(settings, base_url, test_cities, app_log):
    """A second listener drains the same outbox (FOR UPDATE SKIP LOCKED): no loss, at most a duplicate."""
    from citycache.runtime.clients import pg_connect, redis_client
    from citycache.read.consistency import find_mismatches
    from citycache.read.resources import RESOURCES

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
        wait_until(lambda: not find_mismatches(redis_client(settings), conn, RESOURCES)[0], timeout=30,
                   message="every cached key to match the database")
    finally:
        conn.close()


def _backlog(conn) -> int:
    from citycache.pipeline import outbox_backlog

    return outbox_backlog(conn)
