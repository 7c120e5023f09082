"""Hands invalidation events to Kafka and waits for acks=all; one lazily (re)made producer."""
from __future__ import annotations

import logging
import time

from kafka.errors import KafkaError

from citycache import events
from citycache.clients import ensure_topic, kafka_producer
from citycache.settings import Settings

log = logging.getLogger(__name__)


class PublishError(Exception):
    """Kafka did not acknowledge every event; none of them may be treated as delivered."""


class Publisher:
    def __init__(self, settings: Settings, ack_timeout: float = 10.0) -> None:
        self.settings = settings
        self.ack_timeout = ack_timeout
        self._producer = None

    def _ready_producer(self):
        if self._producer is None:
            ensure_topic(self.settings)
            self._producer = kafka_producer(self.settings)
            log.info("kafka producer ready", extra={"bootstrap": self.settings.kafka_bootstrap_servers})
        return self._producer

    def publish(self, batch: list[events.Invalidation]) -> None:
        """Send every event keyed by its code and return only when Kafka acknowledged all of them."""
        try:
            producer = self._ready_producer()
            now = time.time()
            futures = [
                producer.send(events.TOPIC, key=event.key, value=events.encode(
                    events.Invalidation(event.code, event.event_id, event.committed_at, now)))
                for event in batch
            ]
            producer.flush(timeout=self.ack_timeout)
            for future in futures:
                future.get(timeout=self.ack_timeout)
        except (KafkaError, OSError) as exc:
            self.close()  # start over with a fresh producer: its metadata may be stale
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=2)
            except Exception:  # closing a producer whose broker is gone may fail; nothing to save
                log.debug("producer close failed", exc_info=True)
            self._producer = None
