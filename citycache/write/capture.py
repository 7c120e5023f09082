"""What both capture modes of pg_listener share: one reconnect loop, one way to publish a batch of
changes, and the outbox drain (notify mode's source; logical mode drains what the triggers left).

A mode is a `session(conn)`: it serves one Postgres connection until asked to stop, and raises a
psycopg2.Error when the connection is lost; `Capture.run` makes the connection, checks the rules'
tables (a table or a column gone is a bad rule: the program stops), and backs off between tries.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import psycopg2

from citycache import tables as rule_tables
from citycache.rules import Rules
from citycache.runtime import timing
from citycache.runtime.backoff import Backoff
from citycache.runtime.clients import pg_connect
from citycache.runtime.heartbeat import Heartbeat
from citycache.runtime.metrics import BAD_EVENTS, PUBLISHED
from citycache.runtime.shutdown import Shutdown
from citycache.settings import Settings
from citycache.tables import Table
from citycache.write import outbox
from citycache.write.coalesce import Coalescer
from citycache.write.publisher import PublishError, Publisher
from citycache.write.window import Window

log = logging.getLogger("pg_listener")

# Rows per drain transaction (one Kafka publish): a full window at the highest rates fits in one.
BATCH_SIZE = 20_000
# Rows of a table outside the rules are logged once a minute per table, however often they come.
OUTSIDE_LOG_SECONDS = 60.0


class Capture:
    def __init__(self, settings: Settings, rules: Rules, shutdown: Shutdown, publisher: Publisher,
                 heartbeat: Heartbeat) -> None:
        self.settings, self.rules, self.shutdown = settings, rules, shutdown
        self.publisher, self.heartbeat = publisher, heartbeat
        self.kafka_backoff = Backoff(base=0.5, cap=timing.RECONNECT_CAP_SECONDS)

    def run(self, session: Callable[[object, dict[str, Table]], None],
            precheck: Callable[[object], None] | None = None) -> None:
        """Outer loop: (re)connect, check the server (`precheck`) and the rules' tables, serve until
        asked to stop; back off while Postgres is away. BadRules (a table or column gone) ends it: the
        program stops."""
        pg_backoff = Backoff(base=0.2, cap=timing.RECONNECT_CAP_SECONDS)
        while not self.shutdown.requested:
            self.heartbeat.beat()
            conn = None
            try:
                conn = pg_connect(self.settings, autocommit=True, application_name=f"pg_listener {os.getpid()}")
                if precheck is not None:
                    precheck(conn)
                found = rule_tables.describe(conn, self.rules)
                pg_backoff.reset()
                session(conn, found)
            except psycopg2.Error as exc:
                delay = pg_backoff.next()
                log.warning("postgres unavailable, reconnecting",
                            extra={"error": str(exc).strip(), "retry_in_s": delay})
                self.pause(delay)
            finally:
                if conn is not None:
                    conn.close()

    def pause(self, seconds: float) -> None:
        """Wait, beating, until the time is up or a stop is asked for."""
        self.shutdown.sleep(seconds, every=timing.BEAT_SECONDS, tick=self.heartbeat.beat)

    def publish(self, batch: Coalescer, **details) -> bool:
        """Hand the batch's events to Kafka; True once all are acknowledged (or there were none).
        Values that made no key are logged and counted here, for both modes."""
        events = batch.events()
        for bad in batch.unusable:
            log.warning("change skipped: no usable key", extra={"table": bad.table, "why": bad.why[:200]})
        BAD_EVENTS.labels("unusable").inc(len(batch.unusable))
        if not events:
            return True
        try:
            self.publisher.publish(events)
        except PublishError as exc:
            log.warning("kafka unavailable, changes kept for retry", extra={"error": str(exc), **details})
            return False
        self.kafka_backoff.reset()
        PUBLISHED.inc(len(events))
        log.info("published", extra={**details, "events": len(events),
                                     "keys": [e.key or "*" for e in events][:20]})
        return True


class OutboxDrain:
    """Takes the outbox in batches, publishes each, commits only after Kafka acknowledged it.
    `taken` says how many rows the last drain took; the window learns the rate they came at."""

    def __init__(self, capture: Capture, cur, window: Window) -> None:
        self.capture, self.cur, self.window = capture, cur, window
        self.take_plain, self.take_waking = outbox.take_sql(cur.connection)
        self.taken = 0
        self.last_drain_at = time.monotonic()
        self._outside_logged: dict[str, float] = {}

    def drain(self, waking: bool = False) -> bool | None:
        """Publish and delete batches while they come back full, one commit per batch.

        True: the outbox is empty. False: rows are left (taken by another listener, or more than a
        batch). None: Kafka failed and the batch was rolled back (kept for the retry)."""
        started, self.taken = time.monotonic(), 0
        try:
            return self._drain(self.take_waking if waking else self.take_plain)
        finally:
            self.window.observe(self.taken, started - self.last_drain_at)
            self.last_drain_at = started

    def _drain(self, take: str) -> bool | None:
        cur = self.cur
        while True:
            try:
                grouped = outbox.take(cur, take, BATCH_SIZE)
                take = self.take_plain
                rows = sum(count for *_, count in grouped)
                batch, outside = outbox.to_changes(grouped, self.capture.rules)
                self._report_outside(outside)
                published = self.capture.publish(batch, rows=rows)
                cur.execute("COMMIT" if published else "ROLLBACK")
                if not published:
                    return None
            except BaseException:
                if not cur.connection.closed:
                    try:
                        cur.execute("ROLLBACK")
                    except psycopg2.Error:
                        pass
                raise
            if not rows:
                return not outbox.pending(cur)
            self.taken += rows
            if rows < BATCH_SIZE:
                return False

    def _report_outside(self, tables: list[str]) -> None:
        BAD_EVENTS.labels("outbox").inc(len(tables))
        now = time.monotonic()
        for table in dict.fromkeys(tables):
            if now - self._outside_logged.get(table, -OUTSIDE_LOG_SECONDS) >= OUTSIDE_LOG_SECONDS:
                self._outside_logged[table] = now
                log.warning("outbox rows of a table outside the rules skipped (bin/cli schema install removes "
                            "its triggers; logged once a minute)", extra={"table": table[:64]})

    def drain_until_published(self) -> None:
        """Drain what is there, retrying while Kafka fails (with its backoff) until a stop is asked for."""
        while self.drain() is None and not self.capture.shutdown.requested:
            self.capture.pause(self.capture.kafka_backoff.next())
