"""Hands invalidation events to Kafka and waits for acks=all; one lazily (re)made producer."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka.errors import KafkaError, KafkaTimeoutError

from citycache import events
from citycache.runtime import timing
from citycache.runtime.clients import ensure_topic, kafka_producer
from citycache.settings import Settings

log = logging.getLogger(__name__)


class PublishError(Exception):
    """Kafka did not acknowledge every event; none of them may be treated as delivered."""


class Publisher:
    def __init__(self, settings: Settings, *, client_id: str, should_stop: Callable[[], bool] = lambda: False,
                 while_waiting: Callable[[], None] = lambda: None,
                 ack_timeout: float = timing.KAFKA_ACK_TIMEOUT_SECONDS) -> None:
        self.settings = settings
        self.client_id = client_id
        self.should_stop = should_stop
        self.ack_timeout = ack_timeout
        self.while_waiting = while_waiting  # called between the slices of a wait (a heartbeat)
        self._producer = None
        self._topic_ready = False

    def _ready_producer(self):
        if not self._topic_ready:
            ensure_topic(self.settings)
            self._topic_ready = True
        if self._producer is None:
            self._producer = kafka_producer(self.settings, client_id=self.client_id)
            log.info("kafka producer ready", extra={"bootstrap": self.settings.kafka_bootstrap_servers})
        return self._producer

    def publish(self, batch: list[events.Invalidation]) -> None:
        """Send every event keyed by its cache key and return only when Kafka acknowledged all of them."""
        try:
            producer = self._ready_producer()
            now = time.time()
            futures = [producer.send(events.TOPIC, key=event.message_key, value=events.encode(event, published_at=now))
                       for event in batch]
            self._await_acks(producer, futures)
        except (KafkaError, OSError) as exc:
            self.close()  # start over with a fresh producer: its metadata may be stale
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc

    def _await_acks(self, producer, futures) -> None:
        """Wait for every ack in short slices, so a stop request abandons the batch within a second."""
        deadline = time.monotonic() + self.ack_timeout
        for future in futures:
            while not future.is_done:
                if self.should_stop():
                    raise PublishError("stopping: batch abandoned before Kafka acknowledged it")
                if time.monotonic() > deadline:
                    raise PublishError(f"no acknowledgement from Kafka within {self.ack_timeout:.0f} s")
                try:
                    producer.flush(timeout=0.25)
                except KafkaTimeoutError:
                    # Not all acknowledged within this slice (flush raises then): a leader moving
                    # to another broker takes seconds, and the producer retries meanwhile.
                    pass
                self.while_waiting()
            future.get(timeout=0)  # raises the delivery error, if any

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=2)
            except Exception:  # closing a producer whose broker is gone may fail; nothing to save
                log.debug("producer close failed", exc_info=True)
            self._producer = None
