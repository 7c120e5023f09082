"""The invalidation pipeline's state, for /health, /metrics and `ops.cli status`: backlog and lag."""
from __future__ import annotations

from kafka import TopicPartition
from kafka.protocol.consumer.offsets import OffsetSpec

from citycache.clients import kafka_admin
from citycache.events import TOPIC
from citycache.settings import Settings

BACKLOG_SQL = "SELECT count(*) FROM city_outbox"


def outbox_backlog(conn) -> int:
    """Outbox rows not yet acknowledged by Kafka (pg_listener deletes them after the ack)."""
    with conn.cursor() as cur:
        cur.execute(BACKLOG_SQL)
        return cur.fetchone()[0]


def lag_by_partition(ends: dict[int, int], committed: dict[int, int | None]) -> dict[int, int]:
    """End offset minus committed offset per partition; a partition never committed counts from 0."""
    return {p: max(0, end - (committed.get(p) or 0)) for p, end in ends.items()}


def consumer_lag(settings: Settings, *, timeout_ms: int = 3000) -> dict[int, int]:
    """Messages of the topic the cleaners' group has not committed yet, by partition."""
    admin = kafka_admin(settings, timeout_ms=timeout_ms)
    try:
        partitions = [TopicPartition(TOPIC, p) for p in _partition_ids(admin)]
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions}, timeout_ms=timeout_ms)
        group = settings.kafka_consumer_group
        committed = admin.list_group_offsets({group: partitions}).get(group, {})
        return lag_by_partition(
            {tp.partition: ends[tp].offset for tp in partitions},
            {tp.partition: (meta.offset if meta is not None and meta.offset >= 0 else None)
             for tp, meta in committed.items()})
    finally:
        admin.close()


def _partition_ids(admin) -> list[int]:
    (topic,) = admin.describe_topics([TOPIC])
    return sorted(partition["partition_index"] for partition in topic["partitions"])
