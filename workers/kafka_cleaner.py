"""Kafka -> Redis: consume invalidations, delete the cache keys and their leases, then commit the offsets.

At-least-once: offsets are committed only after Redis acknowledged the deletes; if Redis is down
the batch is retried (never committed past); a DEL is idempotent, so a redelivery is harmless.
A malformed message is logged with its offset and skipped; it never stops the loop. An
invalidate_all wipes the prefixes it names (one without any, from before the rules: every rule's).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import redis
from kafka import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError

from citycache import events
from citycache.rules import Rules
from citycache.runtime import metrics, timing
from citycache.runtime.backoff import Backoff
from citycache.runtime.clients import ensure_topic, kafka_consumer, redis_client
from citycache.runtime.heartbeat import Heartbeat
from citycache.runtime.logs import configure_logging
from citycache.runtime.metrics import APPLIED, BAD_EVENTS, COMMIT_TO_DEL
from citycache.runtime.shutdown import Shutdown
from citycache.runtime.startup import checked_rules, refusing_bad_config
from citycache.settings import Settings, get_settings
from citycache.write.deletes import Deleter, invalidate, redis_deleter, wipe


log = logging.getLogger("kafka_cleaner")

POLL_MS = 500


@dataclass
class Plan:
    """What one polled batch asks for: keys to delete (coalesced, in order), and prefixes to wipe."""
    keys: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    skipped: int = 0
    events: int = 0  # valid events, before coalescing
    committed_at: list[float] = field(default_factory=list)  # commit times carried by the events


def plan_batch(records, rules: Rules) -> Plan:
    plan, seen = Plan(), set()
    for record in records:
        try:
            event = events.decode(record.value)
        except events.BadEvent as exc:
            plan.skipped += 1
            log.warning("bad event skipped", extra={
                "partition": record.partition, "offset": record.offset, "error": str(exc),
                "value": repr(record.value[:120]) if record.value is not None else None})
            continue
        plan.events += 1
        if event.committed_at is not None:
            plan.committed_at.append(event.committed_at)
        if event.key is None:
            for prefix in (rules.prefixes if event.prefixes is None else event.prefixes):
                if prefix not in plan.prefixes:
                    plan.prefixes.append(prefix)
        elif event.key not in seen:
            seen.add(event.key)
            plan.keys.append(event.key)
    return plan


def apply_plan(client: redis.Redis, plan: Plan, deleter: Deleter | None = None) -> int:
    deleted = invalidate(client, plan.keys, deleter)
    if plan.prefixes:
        deleted += wipe(client, plan.prefixes, deleter)
    return deleted


class LogRebalance(ConsumerRebalanceListener):
    """Offsets are committed after every batch, so a revocation has nothing pending to save."""

    def on_partitions_revoked(self, revoked):
        log.info("partitions revoked", extra={"partitions": sorted(p.partition for p in revoked)})

    def on_partitions_assigned(self, assigned):
        log.info("partitions assigned", extra={"partitions": sorted(p.partition for p in assigned)})


def record_applied(plan: Plan, now: float) -> None:
    APPLIED.inc(plan.events)
    for committed_at in plan.committed_at:
        COMMIT_TO_DEL.observe(max(0.0, now - committed_at))


class KafkaCleaner:
    def __init__(self, settings: Settings, rules: Rules, shutdown: Shutdown) -> None:
        self.settings, self.rules = settings, rules
        self.shutdown = shutdown
        self.redis = redis_client(settings)
        self.deleter = redis_deleter(settings, self.redis)
        self.heartbeat = Heartbeat(redis_client(settings, timeout=1.0), "kafka_cleaner")

    def connect(self):
        backoff = Backoff(base=0.5, cap=timing.RECONNECT_CAP_SECONDS)
        while not self.shutdown.requested:
            self.heartbeat.beat()
            try:
                ensure_topic(self.settings)
                consumer = kafka_consumer(self.settings)
                consumer.subscribe([events.TOPIC], listener=LogRebalance())
                log.info("consuming", extra={"topic": events.TOPIC, "group": self.settings.kafka_consumer_group,
                                             "instance": self.settings.kafka_group_instance_id or None})
                return consumer
            except (KafkaError, OSError) as exc:
                delay = backoff.next()
                log.warning("kafka unavailable, retrying", extra={"error": str(exc), "retry_in_s": delay})
                self.shutdown.sleep(delay, every=timing.BEAT_SECONDS, tick=self.heartbeat.beat)
        return None

    def run(self) -> None:
        consumer = self.connect()
        if consumer is None:
            self.heartbeat.stop()
            return
        try:
            while not self.shutdown.requested:
                self.heartbeat.beat()
                batch = consumer.poll(timeout_ms=POLL_MS)
                records = [record for part in batch.values() for record in part]
                if not records:
                    continue
                plan = plan_batch(records, self.rules)
                BAD_EVENTS.labels("kafka").inc(plan.skipped)
                if not self.apply_until_done(plan):
                    log.info("stopping with the batch uncommitted; it will be redelivered",
                             extra={"records": len(records)})
                    break
                self.commit(consumer)
        finally:
            consumer.close(autocommit=False)
            self.heartbeat.stop()
            log.info("stopped")

    def apply_until_done(self, plan: Plan) -> bool:
        """Retry the deletes until Redis acknowledges them; False if asked to stop first."""
        # Capped at 1 s: after a Redis Cluster failover the promoted replica serves within seconds,
        # and a longer pause would only add to the time the cache stays stale.
        backoff = Backoff(base=0.2, cap=1.0)
        while True:
            try:
                deleted = apply_plan(self.redis, plan, self.deleter)
                record_applied(plan, time.time())
                log.info("invalidated", extra={"keys": plan.keys[:20], "prefixes": plan.prefixes,
                                               "deleted": deleted})
                return True
            except redis.RedisError as exc:
                if self.shutdown.requested:
                    return False
                self.heartbeat.beat()
                delay = backoff.next()
                log.warning("redis unavailable, batch kept for retry",
                            extra={"error": str(exc), "retry_in_s": delay})
                self.shutdown.sleep(delay, every=timing.BEAT_SECONDS, tick=self.heartbeat.beat)

    @staticmethod
    def commit(consumer) -> None:
        try:
            consumer.commit()
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on (rebalance) or Kafka is away: these records will come again.
            log.warning("offset commit failed; batch will be redelivered", extra={"error": str(exc)})


@refusing_bad_config
def main() -> None:
    settings = get_settings()
    configure_logging("kafka_cleaner", settings.log_level)
    metrics.setup(settings)
    rules = checked_rules(settings)
    KafkaCleaner(settings, rules, Shutdown().install()).run()


if __name__ == "__main__":
    main()
