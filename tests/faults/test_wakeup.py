"""The wake-up handshake (guarantee 8): writers skip NOTIFY while pg_listener is awake, and no committed
row waits for the periodic poll; several listeners share one outbox and survive one being killed.

The tests run listeners of their own with a poll far longer than the tests' waits, so an
invalidation that arrives at all arrived without the poll.
"""
from __future__ import annotations

import os
import signal
import time
from datetime import datetime

import psycopg2
import pytest

from citycache.runtime.clients import pg_connect
from citycache.read.cities import key as cache_key
from citycache.write.dbnames import FLAG, OUTBOX
from tests.burst import WriteBurst
from tests.support import wait_until
from tests.listeners import OwnListeners, in_a_drain
from tests.faults.test_faults import CODES, assert_consistent

NO_POLL = "600"  # seconds: far beyond every wait below


def flag(db) -> int:
    with db.cursor() as cur:
        cur.execute(f"SELECT last_value FROM {FLAG}")
        return cur.fetchone()[0]


def test_a_writer_that_read_awake_is_waited_for_before_the_listener_sleeps(settings, db, redis, test_cities,
                                                                            tmp_path):
    """The dangerous interleaving, forced: a writer reads "awake" (so it will not notify) and stays open
    while the listener finds the outbox empty and goes to sleep; only then does the writer commit."""
    test_cities("QQA", ("Late", 1))
    test_cities("QQB", ("Holder", 1))
    watcher = psycopg2.connect(settings.database_url)
    watcher.autocommit = True
    hold = psycopg2.connect(settings.database_url)
    writer = psycopg2.connect(settings.database_url)
    try:
        with watcher.cursor() as cur:
            cur.execute("LISTEN city_updates")
        with OwnListeners(tmp_path, settings.database_url) as own:
            listener = own.start(OUTBOX_POLL_SECONDS=NO_POLL, LOG_LEVEL="DEBUG")
            wait_until(lambda: any(m["msg"] == "asleep" for m in listener.messages()), timeout=30,
                       message="the listener to go to sleep after its start")
            # Keep it awake without a race: an outbox row it cannot take (we hold it), then a wake-up.
            with db.cursor() as cur:
                cur.execute(f"SELECT setval('{FLAG}', 0)")  # so this write does not wake it
                cur.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQB'")
            with hold.cursor() as cur:
                cur.execute(f"SELECT ctid FROM {OUTBOX} WHERE vals = ARRAY['QQB'] FOR UPDATE")
                assert cur.rowcount == 1
            mark = listener.lines()
            with db.cursor() as cur:
                cur.execute("SELECT pg_notify('city_updates', 'QQB')")
            wait_until(lambda: any(m["msg"] == "awake" for m in listener.messages(mark)), timeout=10,
                       message="the listener to wake up and find the held row")
            assert flag(db) == 0

            # The writer: its trigger reads "awake" and so does not notify; its transaction stays open.
            redis.set(cache_key("QQA"), b"marker: not yet invalidated", ex=600)
            with writer.cursor() as cur:
                cur.execute("UPDATE city SET population = 3 WHERE countrycode = 'QQA'")
            # Let the listener drain the held row, find the outbox empty (the writer's row is not
            # committed) and start to sleep: it has set the flag, and either waits for the writer or
            # (without the handshake) has already gone to sleep.
            mark = listener.lines()
            hold.rollback()

            def sleeping_or_waiting():
                messages = listener.messages(mark)
                return any(m["msg"] == "asleep" or (m["msg"] == "settling" and m["in_flight"] > 0)
                           for m in messages)

            wait_until(sleeping_or_waiting, timeout=10, message="the listener to start going to sleep")
            assert flag(db) == 1
            writer.commit()

            # Delivered without a NOTIFY from the writer and without the (600 s) poll.
            wait_until(lambda: not redis.exists(cache_key("QQA")), timeout=20,
                       message="the invalidation of the writer that read 'awake'")
            watcher.poll()
            assert "QQA" not in [n.payload for n in watcher.notifies], "the writer notified after all"
    finally:
        for conn in (writer, hold, watcher):
            conn.close()


@pytest.fixture
def seeded(test_cities):
    for code in CODES:
        test_cities(code, *[(f"{code}-town-{i}", 1000 * i) for i in range(1, 4)])


@pytest.mark.slow
def test_two_listeners_share_the_outbox_and_one_killed_mid_drain_loses_nothing(settings, base_url, seeded,
                                                                                fault_times, tmp_path):
    """Both take rows with SKIP LOCKED; kill -9 the one holding a drain open (rows taken, Kafka not yet
    acknowledged): its rows come back, the other one publishes them, and the cache ends consistent."""
    conn = pg_connect(settings, autocommit=True)
    try:
        with OwnListeners(tmp_path, settings.database_url) as own:
            listeners = {listener.pid: listener for listener in (own.start(), own.start())}
            killed = {}

            def kill_the_one_mid_drain():
                def caught():
                    mine = [pid for pid in in_a_drain(conn) if pid in listeners]
                    if mine:
                        os.kill(mine[0], signal.SIGKILL)
                        killed.update(pid=mine[0], at=time.time())
                    return mine

                wait_until(caught, timeout=30, message="a listener caught in a drain", interval=0.002)

            with WriteBurst(settings.database_url, base_url, CODES, write_interval=0.005) as burst:
                burst.await_writes(40)
                kill_the_one_mid_drain()
                burst.await_writes(100)
            recovered_at = time.monotonic()
            assert listeners[killed["pid"]].process.wait(timeout=10) == -signal.SIGKILL
            survivor = next(listener for pid, listener in listeners.items() if pid != killed["pid"])
            assert_consistent(settings, "two pg_listeners, kill -9 the one mid-drain", recovered_at, fault_times)
            published_after = [datetime.fromisoformat(m["ts"].replace("Z", "+00:00")).timestamp()
                                for m in survivor.messages() if m["msg"] == "published"]
            published_after = [t for t in published_after if t > killed["at"]]
            assert published_after, "the survivor published nothing after the kill"
            fault_times["two pg_listeners: kill -9 -> the survivor's next publish"] = round(
                published_after[0] - killed["at"], 3)
    finally:
        conn.close()
