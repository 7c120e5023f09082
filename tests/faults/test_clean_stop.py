"""Guarantee 7, clean stop: SIGTERM ends each worker within seconds, finishing or abandoning its batch."""
import os
import signal
import sys
import time

import pytest
from kafka import KafkaProducer

from citycache import events
from citycache.read.cities import key as cache_key
from citycache.runtime.clients import kafka_admin
from tests.support import Spawned


@pytest.mark.parametrize("worker, ready", [("pg_listener", "listening"), ("kafka_cleaner", "partitions assigned"),
                                           ("consistency_sampler", "sampling")])
def test_sigterm_ends_a_worker_within_5_seconds(worker, ready, settings):
    env = dict(os.environ, KAFKA_CONSUMER_GROUP="sigterm-test")  # keep the real group undisturbed
    process = Spawned([sys.executable, "-m", f"workers.{worker}"], env=env)
    try:
        process.wait_for_line(f'"msg": "{ready}"', timeout=30)
        sent = time.monotonic()
        process.process.send_signal(signal.SIGTERM)
        rest = process.finish(timeout=5)  # a hung shutdown fails, it does not hang
        assert process.process.returncode == 0
        assert time.monotonic() - sent < 5
        assert '"msg": "stopped"' in rest
    finally:
        process.kill()


def test_sigterm_while_redis_is_unavailable_abandons_the_batch_uncommitted(settings):
    """The cleaner holds a batch it cannot apply: SIGTERM ends it promptly without committing."""
    group = f"sigterm-redis-{time.time_ns()}"
    env = dict(os.environ, KAFKA_CONSUMER_GROUP=group, REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens
    process = Spawned([sys.executable, "-m", "workers.kafka_cleaner"], env=env)
    try:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        producer.send(events.TOPIC, key=b"QQA", value=events.encode(events.Invalidation(cache_key("QQA"))))
        producer.flush(timeout=10)
        producer.close()
        process.wait_for_line('"msg": "redis unavailable, batch kept for retry"', timeout=30)
        sent = time.monotonic()
        process.process.send_signal(signal.SIGTERM)
        rest = process.finish(timeout=5)
        assert time.monotonic() - sent < 5
        assert '"msg": "stopping with the batch uncommitted; it will be redelivered"' in rest
    finally:
        process.kill()
    admin = kafka_admin(settings)
    try:
        committed = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    assert all(offset.offset <= 0 for offset in committed.values())  # nothing committed past the batch
