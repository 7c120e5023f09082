"""The invalidation pipeline's state in one place: worker heartbeats, outbox backlog, consumer lag,
and in logical mode the replication slot's retained WAL.

/health, /metrics and `bin/cli status` all read it through snapshot(). Each process keeps one
long-lived Kafka admin client (KafkaAdmin) for it instead of connecting to Kafka per request.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from kafka import KafkaAdminClient, TopicPartition
from kafka.protocol.consumer.offsets import OffsetSpec

from citycache.events import TOPIC
from citycache.runtime import heartbeat
from citycache.runtime.clients import kafka_admin
from citycache.settings import Settings
from citycache.write import dbnames, outbox, replication

_reads = ThreadPoolExecutor(max_workers=6, thread_name_prefix="pipeline")


class KafkaAdmin:
    """One admin client per process, shared by its threads; made on first use, made anew after a failure."""

    def __init__(self, settings: Settings, timeout_ms: int = 3000) -> None:
        self.settings, self.timeout_ms = settings, timeout_ms
        self._client: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        self.connects = 0  # clients made so far: one in steady state

    def call(self, work):
        """`work(client)` under the lock; a failure drops the client, so the next call reconnects."""
        with self._lock:
            if self._client is None:
                self._client = kafka_admin(self.settings, timeout_ms=self.timeout_ms)
                self.connects += 1
            try:
                return work(self._client)
            except Exception:
                self._close()
                raise

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a client whose broker is gone may fail; nothing to save
                pass
            self._client = None


@dataclass(frozen=True)
class PipelineState:
    """What snapshot() read; a part that could not be read is None with its `*_error` saying why."""
    workers: dict[str, float | None] | None  # seconds since each worker's freshest heartbeat; None: none
    workers_error: str | None
    outbox_backlog: int | None
    outbox_error: str | None
    consumer_lag: dict[int, int] | None  # by partition
    lag_error: str | None
    replication_slot: dict | None = None  # logical mode's slot (see replication_slot()); None: no slot
    slot_error: str | None = None

    @property
    def total_lag(self) -> int | None:
        return None if self.consumer_lag is None else sum(self.consumer_lag.values())

    def workers_up(self) -> dict[str, bool]:
        return {w: self.workers is not None and self.workers.get(w) is not None for w in heartbeat.WORKERS}


def snapshot(settings: Settings, *, query, cache: redis.Redis, admin: KafkaAdmin,
             timeout: float = 5.0) -> PipelineState:
    """Read the three parts side by side; `query(work)` runs `work(conn)` on a Postgres connection."""
    workers = _reads.submit(_guarded, lambda: heartbeat.ages(cache))
    backlog = _reads.submit(_guarded, lambda: query(outbox_backlog))
    lag = _reads.submit(_guarded, lambda: consumer_lag(admin, settings.kafka_consumer_group))
    slot = _reads.submit(_guarded, lambda: query(lambda conn: replication_slot(conn, settings)))
    (ages, ages_error), (rows, rows_error), (by_partition, lag_error), (slot_state, slot_error) = (
        _result(future, timeout) for future in (workers, backlog, lag, slot))
    return PipelineState(ages, ages_error, rows, rows_error, by_partition, lag_error, slot_state, slot_error)


def outbox_backlog(conn) -> int:
    """Outbox rows not yet acknowledged by Kafka (pg_listener deletes them after the ack)."""
    return outbox.backlog(conn)


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
        cur.execute("SELECT pg_logical_emit_message(true, %s, '')::text", (dbnames.BARRIER_PREFIX,))
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


def consumer_lag(admin: KafkaAdmin, group: str) -> dict[int, int]:
    """Messages of the topic the cleaners' group has not committed yet, by partition."""
    def read(client: KafkaAdminClient) -> dict[int, int]:
        (topic,) = client.describe_topics([TOPIC])
        partitions = [TopicPartition(TOPIC, p["partition_index"]) for p in topic["partitions"]]
        ends = client.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions},
                                             timeout_ms=admin.timeout_ms)
        committed = client.list_group_offsets({group: partitions}).get(group, {})
        return lag_by_partition(
            {tp.partition: ends[tp].offset for tp in partitions},
            {tp.partition: (meta.offset if meta is not None and meta.offset >= 0 else None)
             for tp, meta in committed.items()})

    return admin.call(read)


def describe(exc: BaseException) -> str:
    """A short reason for one line: the exception's kind and the first line of its text."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:160] if text else type(exc).__name__


def _guarded(read):
    try:
        return read(), None
    except Exception as exc:  # reported with the state: the caller decides what a failure means
        return None, describe(exc)


def _result(future, timeout: float):
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        return None, f"no answer within {timeout:.0f} s"
