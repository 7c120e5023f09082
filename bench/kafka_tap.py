"""A Kafka consumer of our own (no group) that records when each invalidation became readable."""
from __future__ import annotations

import threading
import time

from kafka import KafkaConsumer, TopicPartition

from citycache import events
from citycache.settings import get_settings


class KafkaTap:
    """Reads city_updates from the current end, on a thread; `seen` is [(t_seen, partition, offset, event)]."""

    def __init__(self) -> None:
        settings = get_settings()
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers.split(","), enable_auto_commit=False,
            group_id=None, fetch_max_wait_ms=100, client_id="bench-tap")
        parts = self.consumer.partitions_for_topic(events.TOPIC) or set()
        self.partitions = [TopicPartition(events.TOPIC, p) for p in sorted(parts)]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_end()
        self.start_offsets = {tp.partition: self.consumer.position(tp) for tp in self.partitions}
        self.seen: list[tuple[float, int, int, events.Invalidation]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-tap", daemon=True)

    def start(self) -> "KafkaTap":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for part, records in self.consumer.poll(timeout_ms=100).items():
                now = time.time()
                for record in records:
                    try:
                        event = events.decode(record.value)
                    except events.BadEvent:
                        continue
                    self.seen.append((now, part.partition, record.offset, event))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.consumer.close(autocommit=False)
