"""The invalidation pipeline's state, for /health, /metrics and `ops.cli status`: backlog and lag."""
from __future__ import annotations

from kafka import TopicPartition
from kafka.protocol.consumer.offsets import OffsetSpec

from citycache import replication
from citycache.clients import kafka_admin
from citycache.events import TOPIC
from citycache.settings import Settings

BACKLOG_SQL = "SELECT count(*) FROM city_outbox"


def outbox_backlog(conn) -> int:
    """Outbox rows not yet acknowledged by Kafka (pg_listener deletes them after the ack)."""
    with conn.cursor() as cur:
        cur.execute(BACKLOG_SQL)
        return cur.fetchone()[0]


def replication_slot(conn, settings: Settings) -> dict | None:
    """Logical mode's slot: WAL it retains, and whether that passed SLOT_WAL_WARNING_BYTES; None without one."""
    retained = replication.retained_wal_bytes(conn, settings.replication_slot)
    if retained is None:
        return None
    return {"slot": settings.replication_slot, "retained_wal_bytes": retained,
            "warning": retained > settings.slot_wal_warning_bytes}


def wal_barrier(conn, slot: str) -> str | None:
    """A WAL position that logical mode's slot must pass: every commit before it is then published.
    None without a slot (notify mode: the outbox backlog says it all)."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        if cur.fetchone() is None:
            return None
        cur.execute("SELECT pg_logical_emit_message(true, 'city-cache barrier', '')::text")
        return cur.fetchone()[0]


def slot_passed(conn, slot: str, lsn: str | None) -> bool:
    """The slot confirmed (so Kafka acknowledged) everything up to `lsn`; True without a slot or barrier."""
    if lsn is None:
        return True
    with conn.cursor() as cur:
        cur.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
                    (lsn, slot))
        row = cur.fetchone()
    return row is None or bool(row[0])


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
