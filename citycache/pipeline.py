"""The invalidation pipeline's backlog: outbox rows not yet published, events not yet applied."""
from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from citycache.clients import kafka_admin
from citycache.events import TOPIC
from citycache.settings import Settings


def outbox_backlog(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM city_outbox")
        return cur.fetchone()[0]


def consumer_lag(settings: Settings) -> int:
    """Events in the topic that the cleaners' group has not committed yet (summed over partitions)."""
    admin = kafka_admin(settings, timeout_ms=5000)
    try:
        group = settings.kafka_consumer_group
        committed = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    probe = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
                          enable_auto_commit=False, request_timeout_ms=5000)
    try:
        partitions = [TopicPartition(TOPIC, p) for p in (probe.partitions_for_topic(TOPIC) or ())]
        ends = probe.end_offsets(partitions)
    finally:
        probe.close()
    lag = 0
    for partition, end in ends.items():
        done = committed.get(partition)
        lag += end - (done.offset if done is not None and done.offset >= 0 else 0)
    return lag
