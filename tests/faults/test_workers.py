"""The two workers under supervisord: operable with supervisorctl, robust to bad events, clean stop."""
import time

import pytest
from kafka import KafkaProducer

from citycache import events
from citycache.read.cities import key as cache_key
from tests.support import start_program, stop_program, supervisorctl, wait_until

PROGRAMS = ("web", "pg_listener", "kafka_cleaner", "consistency_sampler")


def program_states():
    lines = supervisorctl("status", check=False).stdout.splitlines()  # exit 3 while one is stopped
    return {line.split()[0]: line.split()[1] for line in lines if line.strip()}


def test_supervisorctl_lists_the_programs_running(base_url):
    assert program_states() == dict.fromkeys(PROGRAMS, "RUNNING")


@pytest.mark.parametrize("program", ["pg_listener", "kafka_cleaner", "consistency_sampler"])
def test_stop_is_clean_and_quick_then_start_works(base_url, program, app_log):
    started = time.monotonic()
    result = supervisorctl("stop", program)
    elapsed = time.monotonic() - started
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{program}: stopped" in result.stdout
        # supervisord would SIGKILL after stopwaitsecs (15 s); a clean stop is far quicker.
        assert elapsed < 5, f"{program} took {elapsed:.1f} s to stop"
        assert program_states()[program] == "STOPPED"
        assert f'"component": "{program}", "logger": "{program}", "msg": "stopped"' in app_log()
    finally:
        start_program(program)
    assert program_states()[program] == "RUNNING"


def test_changes_made_while_pg_listener_was_stopped_are_not_lost(base_url, http, db, redis, test_cities):
    test_cities("QQA", ("Alpha", 1))
    http.get(f"{base_url}/cities/QQA")
    assert redis.exists(cache_key("QQA"))
    stop_program("pg_listener")
    try:
        with db.cursor() as cur:
            cur.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQA'")
        # Nobody listened at commit: the NOTIFY is gone, but the outbox row waits.
        assert redis.exists(cache_key("QQA"))
    finally:
        start_program("pg_listener")
    wait_until(lambda: not redis.exists(cache_key("QQA")), timeout=15, message="the outbox drained on start")


def test_bad_kafka_messages_are_skipped_and_the_loop_lives(base_url, http, redis, settings, test_cities, app_log):
    pid = supervisorctl("pid", "kafka_cleaner").stdout.strip()
    test_cities("QQB", ("Beta", 1))
    http.get(f"{base_url}/cities/QQB")
    assert redis.exists(cache_key("QQB"))
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    try:
        for garbage in (b"not json", b"\xff\xfe\x00", b'{"action":"format_disk"}', b"[]"):
            producer.send(events.TOPIC, key=b"QQB", value=garbage)
        producer.send(events.TOPIC, key=b"QQB", value=events.encode(events.Invalidation(cache_key("QQB"))))
        producer.flush(timeout=10)
    finally:
        producer.close()
    wait_until(lambda: not redis.exists(cache_key("QQB")), timeout=10,
               message="the valid event after the garbage to be applied")
    assert supervisorctl("pid", "kafka_cleaner").stdout.strip() == pid  # the same process, not a restart
    assert app_log().count('"msg": "bad event skipped"') >= 4


def test_bad_notify_payload_is_logged_and_the_listener_lives(base_url, http, db, redis, test_cities, app_log):
    pid = supervisorctl("pid", "pg_listener").stdout.strip()
    with db.cursor() as cur:
        cur.execute("SELECT pg_notify('city_updates', E'garbage\\x01; DROP TABLE city')")
    test_cities("QQC", ("Gamma", 1))
    http.get(f"{base_url}/cities/QQC")
    with db.cursor() as cur:
        cur.execute("UPDATE city SET population = 3 WHERE countrycode = 'QQC'")
    wait_until(lambda: not redis.exists(cache_key("QQC")), timeout=10, message="the invalidation after the bad one")
    assert supervisorctl("pid", "pg_listener").stdout.strip() == pid
    assert '"msg": "bad notify payload skipped"' in app_log()
