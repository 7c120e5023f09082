"""The consistency sampler against the real stack: a stale value planted by hand is found and logged with its age
and both values, a mismatch that heals counts as late, every resource is sampled, and it only reads, at its rate.

Each test runs a sampler of its own (its own metrics directory, a 1 s stale limit) beside the stack's."""
import json
import os
import socket
import sys
import threading
import time

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from citycache.read.cities import CITIES
from citycache.read.countries import COUNTRIES
from citycache.read.entry import Entry
from tests.support import Spawned, start_program, stop_program, wait_until

RESOURCES = {"cities": CITIES, "countries": COUNTRIES}
# What the sampler may send to Redis: reads, its tracking connection's set-up, and its own heartbeat.
READS = {"GET", "TTL", "SCAN", "PING", "CLIENT", "SUBSCRIBE", "HELLO", "SELECT"}


@pytest.fixture
def sampler(tmp_path, settings):
    """`sampler(**env)`: a consistency sampler of the test's own, started and sampling."""
    started = []

    def start(**env) -> Spawned:
        process = Spawned([sys.executable, "-m", "workers.consistency_sampler"],
                          env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
                               "SAMPLER_STALE_AFTER_SECONDS": "1", **env})
        started.append(process)
        process.wait_for_line('"msg": "sampling"', timeout=30)
        return process

    yield start
    for process in started:
        process.process.terminate()
        process.finish(timeout=10)


def samples(tmp_path) -> dict[tuple, float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path / "metrics"))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples}


def counted(tmp_path, resource: str, result: str) -> float:
    return samples(tmp_path).get(("citycache_consistency_samples_total", (("resource", resource), ("result", result))), 0)


def logged(process: Spawned, msg: str, key: str, timeout: float = 20) -> dict:
    """The sampler's next JSON line with `msg` about `key`."""
    deadline = time.monotonic() + timeout
    while True:
        line = json.loads(process.wait_for_line(f'"msg": "{msg}"', timeout=max(0.1, deadline - time.monotonic())))
        if line.get("key") == key:
            return line


def cached(http, base_url, settings, redis, name: str, code: str) -> bytes:
    """Fill the key through the API (as a reader does) and return what Redis holds."""
    path = "/cities/" if name == "cities" else "/countries/"
    http.get(base_url + path + code)
    http.get(base_url + path + code)
    return wait_until(lambda: redis.get(RESOURCES[name].key(code)), message=f"{name} {code} cached")


@pytest.mark.parametrize("name", RESOURCES)
def test_a_planted_stale_value_is_found_logged_with_its_age_and_both_values(
        base_url, http, redis, settings, test_cities, test_countries, sampler, tmp_path, name):
    test_cities("QQA", ("Alpha", 1234))
    test_countries("QQA", name="Alphaland")
    key = RESOURCES[name].key("QQA")
    right = Entry.from_cached(cached(http, base_url, settings, redis, name, "QQA"))
    process = sampler()
    wrong = Entry(right.data.replace(b"1234", b"4321").replace(b"Alphaland", b"Betaland"))
    assert wrong.data != right.data
    redis.set(key, wrong.cached(), ex=settings.cache_ttl_seconds)  # bypasses the lease, as a buggy writer would
    try:
        line = logged(process, "stale value", key)
    finally:
        redis.delete(key)
    assert line["resource"] == name and line["level"] == "warning"
    assert 1.0 <= line["inconsistent_for_s"] < 5, line
    assert 0 <= line["cached_for_s"] < 5 and 0 < line["ttl_s"] <= settings.cache_ttl_seconds, line
    assert (b"4321" in wrong.data and "4321" in line["cached"] and "1234" in line["database"]) or \
        ("Betaland" in line["cached"] and "Alphaland" in line["database"]), line
    assert counted(tmp_path, name, "stale") == 1
    assert counted(tmp_path, name, "late") == 0


def test_a_mismatch_that_heals_within_the_limit_counts_as_late(base_url, http, redis, settings, test_cities,
                                                               sampler, tmp_path):
    test_cities("QQB", ("Beta", 10))
    key = CITIES.key("QQB")
    right = cached(http, base_url, settings, redis, "cities", "QQB")
    process = sampler(SAMPLER_STALE_AFTER_SECONDS="30")
    redis.set(key, Entry(b'[{"name":"Beta","population":11}]').cached(), ex=settings.cache_ttl_seconds)
    logged(process, "mismatch seen, following it", key)
    redis.set(key, right, ex=settings.cache_ttl_seconds)  # what the next fill after an invalidation stores
    line = logged(process, "late value healed", key)
    assert 0 < line["inconsistent_for_s"] < 30
    assert counted(tmp_path, "cities", "late") == 1 and counted(tmp_path, "cities", "stale") == 0
    lived = samples(tmp_path)[("citycache_inconsistency_seconds_count", (("resource", "cities"),))]
    assert lived == 1


def test_every_resource_is_sampled_while_nothing_is_touched(base_url, http, redis, settings, sampler, tmp_path):
    for code in ("BGR", "FRA", "DEU"):
        cached(http, base_url, settings, redis, "cities", code)
        cached(http, base_url, settings, redis, "countries", code)
    sampler(SAMPLER_RATE="50")  # heard nothing: only the walk finds these
    wait_until(lambda: counted(tmp_path, "cities", "consistent") >= 3 and counted(tmp_path, "countries",
                                                                                    "consistent") >= 3,
               timeout=20, message="consistent samples of both resources")


def test_a_key_just_written_is_compared_before_the_walk_comes_by(base_url, http, db, redis, settings, sampler):
    """Hundreds of keys cached and two comparisons a second: the walk needs minutes to come by a key, the
    tracking connection brings the one just written at once."""
    with db.cursor() as cur:
        cur.execute("SELECT DISTINCT countrycode FROM city ORDER BY 1")
        codes = [code.strip() for (code,) in cur.fetchall()]
    for code in codes:
        http.get(f"{base_url}/cities/{code}")
        http.get(f"{base_url}/countries/{code}")
    assert len([c for c in codes if redis.exists(CITIES.key(c))]) > 200
    process = sampler(SAMPLER_RATE="2", SAMPLER_STALE_AFTER_SECONDS="30")
    key = COUNTRIES.key("DEU")
    right = redis.get(key)
    redis.set(key, Entry(b'{"name":"planted"}').cached(), ex=settings.cache_ttl_seconds)
    try:
        logged(process, "mismatch seen, following it", key, timeout=5)
    finally:
        redis.set(key, right, ex=settings.cache_ttl_seconds)


class Monitor:
    """Every command Redis executes meanwhile (MONITOR), as (client address, command words)."""

    def __init__(self, redis) -> None:
        self.commands: list[tuple[str, list[str]]] = []
        self._stop = threading.Event()
        self._monitor = redis.monitor()
        self._monitor.connection = self._monitor.connection_pool.get_connection()
        self._monitor.connection.send_command("MONITOR")
        assert self._monitor.connection.read_response() in (b"OK", "OK")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            if self._monitor.connection.can_read(timeout=0.2):
                seen = self._monitor.next_command()
                self.commands.append((f"{seen['client_address']}:{seen['client_port']}", seen["command"].split()))

    def stop(self) -> list[tuple[str, list[str]]]:
        self._stop.set()
        self._thread.join(timeout=5)
        self._monitor.connection.disconnect()
        return self.commands


def test_it_only_reads_and_keeps_to_its_rate(base_url, http, db, redis, settings, test_cities, sampler):
    """In Redis it writes nothing but its heartbeat; its queries stay within SAMPLER_RATE a second."""
    test_cities("QQC", ("Gamma", 1))
    for code in ("QQC", "BGR", "FRA", "DEU", "ITA", "ESP", "PRT", "GRC"):
        cached(http, base_url, settings, redis, "cities", code)
        cached(http, base_url, settings, redis, "countries", code)
    with db.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    stop_program("consistency_sampler")  # the stack's own sampler queries too
    try:
        monitor = Monitor(redis)
        process = sampler(SAMPLER_RATE="20")
        with db.cursor() as cur:
            cur.execute("SELECT pg_stat_statements_reset()")
            started = time.monotonic()
            redis.set(CITIES.key("QQC"), Entry(b"[]").cached(), ex=60)  # a mismatch: rechecks count too
            with db.cursor() as write:
                write.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQC'")  # a DEL, then a fill
            http.get(f"{base_url}/cities/QQC")
            wait_until(lambda: time.monotonic() - started > 3, timeout=10, message="three seconds of sampling")
            cur.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE %s OR query LIKE %s",
                        ("SELECT name, population FROM city WHERE countrycode%", "%FROM country%WHERE%"))
            queries, elapsed = cur.fetchone()[0], time.monotonic() - started
            names = {client["addr"]: client["name"] for client in redis.client_list()}
        commands = monitor.stop()
    finally:
        start_program("consistency_sampler")
    pid = process.process.pid
    ours = [words for address, words in commands if names.get(address, "").endswith(f"-{pid}")]
    assert len([w for w in ours if w[0].upper() == "GET"]) >= 10, "the sampler read the cache"
    writes = [words for words in ours if words[0].upper() not in READS]
    assert writes, "its heartbeat is seen: the connections were told apart"
    assert all(w[0].upper() in ("SET", "DEL") and w[1] == f"heartbeat:consistency_sampler:{socket.gethostname()}:{pid}"
               for w in writes), writes
    # The API answered two requests in the window (two queries at most); the rest are the sampler's.
    assert 1 <= queries <= 20 * elapsed + 1 + 2, f"{queries} queries in {elapsed:.1f} s at SAMPLER_RATE=20"
