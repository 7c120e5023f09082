"""Fault tests: kill or stop each process and service during a write burst, recover, and prove every
cached key matches the database (the consistency checker finds nothing).

Each scenario records how long the system took, from recovery, to become consistent; the figures
are printed at the end of the run and written to artifacts/fault-times.json.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from citycache.runtime.clients import pg_connect, redis_client
from citycache.read.consistency import find_mismatches
from citycache.read.resources import RESOURCES
from citycache.pipeline import KafkaAdmin, consumer_lag, outbox_backlog, slot_passed, wal_barrier
from citycache.read.cities import key as cache_key
from citycache.read.countries import key as country_key
from tests.burst import WriteBurst
from tests.subjects import CITY, SUBJECTS, seed
from tests.support import ROOT, program_pid, program_state, start_program, start_service, stop_program, stop_service, wait_until

pytestmark = pytest.mark.slow
# Keyed by cache key, their events land on every partition of the 3-partition topic (checked below),
# so every cleaner of a group has work when one of them is killed: a write to city invalidates both
# keys of its code, one to countrylanguage the country_ key.
CODES = ["QQA", "QQB", "QQC", "QQF"]


@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_burst_codes_cover_every_partition(settings, subject):
    from kafka.partitioner.default import murmur2

    assert settings.kafka_topic_partitions == 3
    keys = [key for code in CODES for key in ([cache_key(code), country_key(code)] if subject is CITY
                                              else [subject.key(code)])]
    assert {(murmur2(key.encode()) & 0x7FFFFFFF) % 3 for key in keys} == {0, 1, 2}


@pytest.fixture
def seeded(test_cities, test_countries):
    for code in CODES:
        seed(CITY, test_cities, test_countries, code)


def quiet(settings, barrier: dict | None = None) -> bool:
    """Outbox drained, no consumer lag, and in logical mode the slot past a barrier set at the first call."""
    conn, admin = pg_connect(settings, autocommit=True), KafkaAdmin(settings)
    try:
        if barrier is not None and "lsn" not in barrier:
            barrier["lsn"] = wal_barrier(conn, settings.replication_slot)
        if barrier is not None and not slot_passed(conn, settings.replication_slot, barrier["lsn"]):
            return False
        return outbox_backlog(conn) == 0 and sum(consumer_lag(admin, settings.kafka_consumer_group).values()) == 0
    finally:
        conn.close()
        admin.close()


def assert_consistent(settings, scenario: str, recovered_at: float, fault_times: dict) -> None:
    """Await quiescence (outbox drained, no consumer lag), then no cached key may disagree."""
    barrier: dict = {}

    def settled():
        try:
            return quiet(settings, barrier)
        except Exception:  # a service still coming back: not quiet yet
            return False

    wait_until(settled, timeout=90, message=f"{scenario}: outbox and consumer lag to drain", interval=0.1)
    conn = pg_connect(settings, autocommit=True)
    try:
        mismatches, checked = find_mismatches(redis_client(settings), conn, RESOURCES)
    finally:
        conn.close()
    fault_times[scenario] = round(time.monotonic() - recovered_at, 2)
    assert not mismatches, "\n".join(m.describe() for m in mismatches)


def kill_program(program: str) -> None:
    """kill -9; supervisord (autorestart=true) brings it back, awaited."""
    pid = program_pid(program)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _alive(pid), timeout=10, message=f"{program} (pid {pid}) to die")
    wait_until(lambda: program_state(program) == "RUNNING" and program_pid(program) != pid,
               timeout=30, message=f"supervisord to restart {program}", interval=0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_burst(settings, base_url, fault, recover, scenario, fault_times, *, during_fault_committed=True,
              subject=CITY):
    """Writes and reads, the fault, more writes; the burst ends before recovery, so the last write to
    each code is one made during the fault: a later write cannot paper over a lost invalidation."""
    recovered = False
    try:
        with WriteBurst(settings.database_url, base_url, CODES, subject=subject) as burst:
            burst.await_writes(40)
            fault()
            burst.await_writes(60, committed=during_fault_committed)
        assert burst.reads > 0
        recover()
        recovered = True
        assert_consistent(settings, scenario, time.monotonic(), fault_times)
    finally:
        if not recovered:  # never leave a service broken for the tests after this one
            recover()


def test_kill_pg_listener_during_a_burst(settings, base_url, seeded, fault_times):
    run_burst(settings, base_url, lambda: kill_program("pg_listener"), lambda: None,
              "kill -9 pg_listener", fault_times)


def test_kill_kafka_cleaner_during_a_burst(settings, base_url, seeded, fault_times):
    run_burst(settings, base_url, lambda: kill_program("kafka_cleaner"), lambda: None,
              "kill -9 kafka_cleaner", fault_times)


def test_pg_listener_stopped_while_writes_commit(settings, base_url, seeded, fault_times):
    run_burst(settings, base_url, lambda: stop_program("pg_listener"),
              lambda: start_program("pg_listener"), "pg_listener stopped, then started", fault_times)


def test_kafka_stopped_during_writes(settings, base_url, seeded, fault_times, pipeline_flows):
    run_burst(settings, base_url, lambda: stop_service("kafka"),
              lambda: start_service("kafka"), "Kafka stopped, then started", fault_times)
    pipeline_flows()


def test_redis_stopped_while_invalidations_flow(settings, base_url, seeded, fault_times, pipeline_flows):
    run_burst(settings, base_url, lambda: stop_service("redis"),
              lambda: start_service("redis"), "Redis stopped, then started", fault_times)
    pipeline_flows()


def test_redis_refusing_writes_while_invalidations_flow(settings, base_url, seeded, fault_times, redis):
    """Harder than a restart (which empties the cache): the stale values stay while every DEL is
    refused (NOREPLICAS), so the cleaner must retry its batch and not commit past it."""
    run_burst(settings, base_url, lambda: redis.config_set("min-replicas-to-write", 1),
              lambda: redis.config_set("min-replicas-to-write", 0), "Redis refusing writes", fault_times)


def test_postgres_restarted(settings, base_url, seeded, fault_times, pipeline_flows):
    run_burst(settings, base_url, lambda: stop_service("postgres"),
              lambda: start_service("postgres"), "Postgres stopped, then started",
              fault_times, during_fault_committed=False)
    pipeline_flows()


def test_two_cleaners_in_one_group_one_killed(settings, base_url, seeded, fault_times, app_log):
    second = subprocess.Popen([sys.executable, "-m", "workers.kafka_cleaner"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Both members hold partitions once the group rebalanced: the supervised cleaner logs it.
        wait_until(lambda: '"msg": "partitions assigned"' in app_log(), timeout=30,
                   message="the group to rebalance onto two cleaners", interval=0.1)
        def killed() -> None:
            assert second.wait(timeout=10) == -signal.SIGKILL, "the second cleaner was not running to be killed"

        run_burst(settings, base_url, second.kill, killed, "two cleaners, one kill -9", fault_times)
    finally:
        if second.poll() is None:
            second.kill()
