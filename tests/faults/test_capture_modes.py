"""Every guarantee for every rule, in both capture modes (DESIGN.md, guarantee 12): for city and for
countrylanguage, each in notify and in logical mode, every write kind and a move, TRUNCATE, the
listener down during writes, kill -9 mid-batch, no stale set, one query per miss storm, and the near
cache's push. A pg_listener of the test's own runs per mode, in place of the supervised one (notify
mode); when the module's tests of a mode end, the supervised one starts again and, finding logical
mode's slot, turns the triggers back on.
"""
from __future__ import annotations

import signal
import threading

import psycopg2
import pytest
import requests

from citycache.read.cache import LeasedCache
from citycache.read.countries import key as country_key
from citycache.rules import lease_key
from citycache.write.dbnames import TRIGGERS
from tests.api_answers import near_metric
from tests.faults.test_faults import CODES, run_burst
from tests.listeners import OwnListeners, in_a_drain
from tests.subjects import CITY, SUBJECTS, seed
from tests.support import start_program, start_service, stop_program, stop_service, wait_until

MODES = ["notify", "logical"]


class Capture:
    """The mode's listener: start, stop, kill -9 and restart (as supervisord would)."""

    def __init__(self, own: OwnListeners, mode: str, **env: str) -> None:
        self.own, self.mode, self.env = own, mode, env
        self.listener = None

    def start(self) -> None:
        self.listener = self.own.start(CAPTURE_MODE=self.mode, **self.env)

    def stop(self) -> None:
        self.listener.stop()

    def kill_and_restart(self) -> None:
        self.listener.kill()
        assert self.listener.process.returncode == -signal.SIGKILL, "the listener was not running to be killed"
        self.start()


@pytest.fixture(scope="module", params=MODES)
def capture(request, settings, tmp_path_factory):
    """One listener per mode for the module's tests (pytest runs a mode's tests together)."""
    yield from _capture(request.param, settings, tmp_path_factory.mktemp(request.param))


@pytest.fixture(params=SUBJECTS, ids=str)
def subject(request):
    return request.param


def _capture(mode_name: str, settings, tmp_path, **env: str):
    with OwnListeners(tmp_path, settings.database_url) as own:
        mode = Capture(own, mode_name, **env)
        mode.start()
        if mode_name == "logical":
            conn = psycopg2.connect(settings.database_url)
            conn.autocommit = True
            try:
                # Streaming once the slot is in use; from then on no trigger runs in a writer's commit.
                wait_until(lambda: _streaming(conn, settings.replication_slot, mode.listener.pid), timeout=30,
                           message="the logical listener to stream from its slot")
                with conn.cursor() as cur:  # on every rule's table
                    cur.execute("SELECT count(*) FROM pg_trigger WHERE tgname = ANY(%s) AND tgenabled <> 'D'",
                                (list(TRIGGERS),))
                    assert cur.fetchone()[0] == 0
            finally:
                conn.close()
        yield mode


def _streaming(conn, slot: str, pid: int) -> bool:
    """The slot is in use by this listener's replication connection (not a predecessor's lingering one)."""
    with conn.cursor() as cur:
        cur.execute("SELECT a.application_name FROM pg_replication_slots s JOIN pg_stat_activity a"
                    " ON a.pid = s.active_pid WHERE s.slot_name = %s", (slot,))
        row = cur.fetchone()
        return bool(row and row[0] == f"pg_listener {pid} wal")


@pytest.fixture
def seeded(subject, test_cities, test_countries):
    for code in CODES:
        seed(subject, test_cities, test_countries, code)


def test_every_write_kind_and_a_move_invalidate(capture, subject, db, invalidated, test_cities, test_countries):
    key = subject.resource.key
    seed(subject, test_cities, test_countries, "QQA", rows=1)
    with db.cursor() as cur:
        with invalidated("QQA", key=key):
            subject.write(cur, "insert", code="QQA")
        with invalidated("QQA", key=key):
            subject.write(cur, "update", code="QQA")
        with invalidated("QQA", key=key), invalidated("QQB", key=key):  # the move: the old code and the new one
            subject.write(cur, "move", src="QQA", dst="QQB")
        with invalidated("QQB", key=key):
            subject.write(cur, "delete", code="QQB")


def test_a_city_write_invalidates_both_of_its_keys(capture, db, invalidated, test_cities):
    test_cities("QQC", ("Gamma", 1))
    with db.cursor() as cur, invalidated("QQC"), invalidated("QQC", key=country_key):
        cur.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQC'")


def test_truncate_invalidates_every_key_under_its_rules_prefixes(capture, subject, db, redis, invalidated):
    """TRUNCATE the table and put its rows back in one transaction (as the seed's --reload does): every
    key under its rule's prefixes goes, including those of codes no row is written to afterwards."""
    kept = f"{subject.resource.template.prefix}QQD"
    redis.set(kept, b"marker: a code with no rows at all", ex=600)
    redis.set("elsewhere_QQD", b"not under any prefix of the rules", ex=600)
    try:
        with db.cursor() as cur, invalidated("QQC", key=subject.key), invalidated("BGR", key=subject.key):
            cur.execute("BEGIN")
            cur.execute(f"CREATE TEMP TABLE keep ON COMMIT DROP AS SELECT * FROM {subject.table}")
            cur.execute(f"TRUNCATE {subject.table}")
            cur.execute(f"INSERT INTO {subject.table} SELECT * FROM keep")
            cur.execute("COMMIT")
        wait_until(lambda: not redis.exists(kept), timeout=15, message="TRUNCATE's invalidate_all")
        assert redis.exists("elsewhere_QQD")
    finally:
        redis.delete("elsewhere_QQD")


def test_listener_down_during_writes(capture, subject, settings, base_url, seeded, fault_times):
    run_burst(settings, base_url, capture.stop, capture.start,
              f"{capture.mode}, {subject}: pg_listener stopped, then started", fault_times, subject=subject)


def test_kill_listener_mid_batch(capture, subject, settings, base_url, seeded, fault_times):
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True

    def kill_mid_batch():
        if capture.mode == "notify":  # caught holding a drain open: rows taken, Kafka not yet acked
            wait_until(lambda: capture.listener.pid in in_a_drain(conn), timeout=30,
                       message="the listener caught in a drain", interval=0.002)
        capture.kill_and_restart()

    try:
        run_burst(settings, base_url, kill_mid_batch, lambda: None,
                  f"{capture.mode}, {subject}: kill -9 pg_listener mid-batch", fault_times, subject=subject)
    finally:
        conn.close()


def test_postgres_restarted(capture, settings, base_url, seeded, fault_times, pipeline_flows, subject):
    if subject is not CITY:
        pytest.skip("the restart's recovery is the same for every rule: run once per mode")
    run_burst(settings, base_url, lambda: stop_service("postgres"), lambda: start_service("postgres"),
              f"{capture.mode}: Postgres stopped, then started", fault_times, during_fault_committed=False)
    pipeline_flows()


def test_no_stale_set_after_an_invalidation_went_by(capture, subject, settings, redis, db, test_cities, test_countries):
    """Reader misses and reads; a writer commits and the invalidation passes; the reader stores: refused."""
    seed(subject, test_cities, test_countries, "QQA", rows=1)
    key = subject.key("QQA")
    redis.delete(key)
    cache = LeasedCache(redis, settings.cache_ttl_seconds)
    state, token = cache.lease(key)  # the reader missed and holds the lease
    assert state == "lease"
    stale = subject.resource.load(db, "QQA")  # ... and read the database
    with db.cursor() as cur:  # a writer commits; the real pipeline invalidates
        subject.write(cur, "update", code="QQA")
    wait_until(lambda: not redis.exists(lease_key(key)), timeout=10, message="the invalidation to cancel the lease")
    assert cache.store(key, token, stale) is False  # the late reader's old data is refused
    assert not redis.exists(key)
    value, source = cache.read_through(key, lambda: subject.resource.load(db, "QQA"))
    assert source == "db" and value == subject.resource.load(db, "QQA") != stale


def test_a_miss_storm_runs_one_query(capture, subject, base_url, db, redis, invalidated, test_cities, test_countries):
    """Many concurrent misses of one key: one database query, however they arrive."""
    seed(subject, test_cities, test_countries, "QQB", rows=1)
    with db.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    # A slow enough query, so that every other request arrives while it runs; one commit, so one
    # invalidation per key, gone by before the storm.
    with invalidated("QQB", key=subject.key), db.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO city (name, countrycode, population) SELECT 'Town ' || i, 'QQB', i"
                    " FROM generate_series(1, 20000) i")
        cur.execute("INSERT INTO countrylanguage SELECT 'QQB', 'x' || i FROM generate_series(1, 20000) i")
        cur.execute("COMMIT")
    redis.delete(subject.key("QQB"))

    def queries() -> int:
        sql = {"cities": "SELECT name, population FROM city WHERE countrycode = $1%%",
               "countries": "%%FROM country c LEFT JOIN city capital%%"}[subject.resource.name]
        with db.cursor() as cur:
            cur.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE %s", (sql,))
            return int(cur.fetchone()[0])

    route = f"{base_url}/{subject.resource.name}/QQB"
    barrier, answers = threading.Barrier(48), []

    def request():
        with requests.Session() as http:
            barrier.wait()
            answers.append(http.get(route, timeout=30).status_code)

    # The consistency sampler compares the refilled key at once, with a query of the same text: count the API's.
    stop_program("consistency_sampler")
    try:
        before = queries()
        threads = [threading.Thread(target=request) for _ in range(48)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [200] * 48
        assert queries() - before == 1
    finally:
        start_program("consistency_sampler")


def test_the_near_cache_drops_a_copy_in_every_process_on_a_write(capture, subject, base_url, http, db,
                                                                  test_cities, test_countries):
    seed(subject, test_cities, test_countries, "QQA", rows=1)
    route = f"{base_url}/{subject.resource.name}/QQA"

    def data() -> set:  # new connections, so both gunicorn processes answer
        return {http.get(route, headers={"Connection": "close"}).content.split(b'"data":', 1)[1] for _ in range(12)}

    hits = near_metric(http, base_url, "citycache_near_cache_lookups_total", result="hit")
    before = wait_until(lambda: len(found := data()) == 1 and found, message="every process to hold one copy")
    assert near_metric(http, base_url, "citycache_near_cache_lookups_total", result="hit") > hits
    with db.cursor() as cur:
        subject.write(cur, "update", code="QQA")
    fresh = {subject.resource.load(db, "QQA") + b"}"}
    assert fresh != before
    wait_until(lambda: data() == fresh, timeout=15, message="every process to answer the write")
