"""A worker that keeps failing is still heard: its beats never stop for as long as the heartbeat TTL.

pg_listener is run against a scratch database with an outbox row it must publish, and a Kafka that
refuses connections, so it goes through failed publishes and a growing backoff while the test
watches its heartbeat key.
"""
import os
import socket
import sys
import time

import psycopg2
import pytest

from citycache import rules
from citycache.runtime.heartbeat import TTL_SECONDS, heartbeat_key
from citycache.runtime.timing import LONGEST_SILENCE_SECONDS
from ops import schema
from tests.support import ROOT, Spawned

WATCH_SECONDS = 16  # long enough for the backoff to pass 8 s between publish attempts


@pytest.fixture
def scratch_database(settings, db):
    name = "heartbeat_silence_test"
    with db.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    url = settings.database_url.rsplit("/", 1)[0] + "/" + name
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute((ROOT / "db" / "schema.sql").read_text())
    schema.install(conn, settings, rules.load(ROOT / "invalidation.toml"))
    with conn.cursor() as cur:
        cur.execute("INSERT INTO city (name, countrycode) VALUES ('Silence', 'QQA')")
    conn.close()
    yield url
    with db.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free once the socket closes: nothing listens there


def test_a_failing_pg_listener_beats_within_its_ttl(scratch_database, redis):
    env = dict(os.environ, DATABASE_URL=scratch_database, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed_port()}")
    worker = Spawned([sys.executable, "-m", "workers.pg_listener"], env=env)
    try:
        worker.wait_for_line('"msg": "listening"', timeout=30)
        key = heartbeat_key("pg_listener", f"{socket.gethostname()}:{worker.process.pid}")
        last_value, last_change, longest = redis.get(key), time.monotonic(), 0.0
        assert last_value is not None, "the listener beats from its first loop"
        deadline = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < deadline:
            value = redis.get(key)
            if value != last_value:
                now = time.monotonic()
                longest, last_value, last_change = max(longest, now - last_change), value, now
            time.sleep(0.05)
        longest = max(longest, time.monotonic() - last_change)
        worker.wait_for_line('"msg": "kafka unavailable, changes kept for retry"', timeout=5)  # it did fail
    finally:
        worker.kill()
        redis.delete(heartbeat_key("pg_listener", f"{socket.gethostname()}:{worker.process.pid}"))
    print(f"longest silence {longest:.1f} s (bound {LONGEST_SILENCE_SECONDS:.0f} s, TTL {TTL_SECONDS} s)")
    assert longest < LONGEST_SILENCE_SECONDS < TTL_SECONDS
