"""Postgres -> Kafka: LISTEN city_updates, drain the outbox, publish invalidations with acks=all.

NOTIFY is only the wake-up; the outbox rows written by db/trigger.sql are the source of truth. The
outbox is drained on every wake-up, at start and every OUTBOX_POLL_SECONDS, so a notification missed
while this worker or its connection was down loses nothing. Rows are deleted only after Kafka acknowledged.

Writers notify only while this worker may be asleep (citycache/write/wakeup.py): awake, it keeps draining
until a drain comes back empty, then does the handshake (flag, wait out in-flight writers, drain once
more) before it sleeps. Any number of listeners can share one database: each takes rows no other holds
(SKIP LOCKED), and none sleeps while rows are left that another one holds, in case that one dies.
"""
from __future__ import annotations

import logging
import os
import select
import time

import psycopg2

from citycache.runtime import metrics, timing
from citycache.write import outbox, replication, wakeup
from citycache.write.window import Window
from citycache.runtime.clients import pg_connect, redis_client
from citycache.events import CHANNEL, BadEvent, parse_code
from citycache.runtime.heartbeat import Heartbeat
from citycache.runtime.backoff import Backoff
from citycache.runtime.logs import configure_logging
from citycache.runtime.metrics import BAD_EVENTS, PUBLISHED
from citycache.write.publisher import PublishError, Publisher
from citycache.settings import Settings, get_settings
from citycache.runtime.shutdown import Shutdown
from workers.logical_capture import LogicalCapture

log = logging.getLogger("pg_listener")

# Rows per drain transaction (one Kafka publish): a full window at the highest rates fits in one.
BATCH_SIZE = 20_000
# After a drain that found rows, the next one waits at least this long (citycache/write/window.py: longer,
# up to CAPTURE_WINDOW_MS, while rows come fast): rows of busy writers gather into fewer, larger batches.
SHORTEST_WINDOW_SECONDS = 0.005
# Rows another listener holds in a drain it has not committed: look again this soon, it may have died.
HELD_RETRY_SECONDS = 0.02
# How often a settling listener checks whether the writers it waits for have ended (doubling).
SETTLE_CHECK_SECONDS = (0.0005, 0.05)
AWAKE, SETTLING, ASLEEP = "awake", "settling", "asleep"


class PgListener:
    def __init__(self, settings: Settings, shutdown: Shutdown, publisher: Publisher) -> None:
        self.settings = settings
        self.shutdown = shutdown
        self.publisher = publisher
        self.kafka_backoff = Backoff(base=0.5, cap=timing.RECONNECT_CAP_SECONDS)
        self.heartbeat = Heartbeat(redis_client(settings, timeout=1.0), "pg_listener")
        self.taken = 0  # rows the last drain took
        self.window = Window(SHORTEST_WINDOW_SECONDS, settings.capture_window_ms / 1000)
        self.last_drain_at = time.monotonic()

    def run(self) -> None:
        """Capture in the configured mode until asked to stop."""
        try:
            if self.settings.capture_mode == "logical":
                LogicalCapture(self).run()
            else:
                self.listen()
        finally:
            self.publisher.close()
            self.heartbeat.stop()
        log.info("stopped")

    def listen(self) -> None:
        """Outer loop: (re)connect and LISTEN, serve until asked to stop; back off while Postgres is away."""
        pg_backoff = Backoff(base=0.2, cap=timing.RECONNECT_CAP_SECONDS)
        while not self.shutdown.requested:
            self.heartbeat.beat()
            conn = None
            try:
                conn = pg_connect(self.settings, autocommit=True, application_name=f"pg_listener {os.getpid()}")
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                if replication.prepare_notify(conn, self.settings.replication_slot):
                    log.warning("logical mode's slot dropped; everything invalidated once",
                                extra={"slot": self.settings.replication_slot})
                log.info("listening", extra={"channel": CHANNEL})
                pg_backoff.reset()
                self.serve(conn)
            except psycopg2.Error as exc:
                delay = pg_backoff.next()
                log.warning("postgres unavailable, reconnecting",
                            extra={"error": str(exc).strip(), "retry_in_s": delay})
                self.shutdown.sleep(delay, every=timing.BEAT_SECONDS, tick=self.heartbeat.beat)
            finally:
                if conn is not None:
                    conn.close()

    def serve(self, conn) -> None:
        """Inner loop: drain on a notification, the periodic timer or the handshake; sleep in select()."""
        take_plain, take_waking = outbox.take_sql(conn)
        # Awake at start: drain, then do the handshake, whatever the flag says (a listener may have died
        # between clearing it and setting it again).
        state, xids, woken = AWAKE, [], False
        drain_at, check_at, settle_wait = time.monotonic(), 0.0, SETTLE_CHECK_SECONDS[0]
        with conn.cursor() as cur:
            while not self.shutdown.requested:
                self.heartbeat.beat()
                now = time.monotonic()
                if state == SETTLING and xids and now >= check_at:
                    xids = wakeup.still_in_flight(cur, xids)
                    settle_wait = min(settle_wait * 2, SETTLE_CHECK_SECONDS[1])
                    check_at = now + settle_wait
                if woken or now >= drain_at or (state == SETTLING and not xids):
                    waking = woken and state == ASLEEP
                    empty = self.drain(cur, take_waking if waking else take_plain, take_plain)
                    woken, now = False, time.monotonic()
                    if waking:
                        state = AWAKE
                        log.debug("awake")
                    if empty is None:  # Kafka failed: rows kept, retry after the backoff, then settle anew
                        drain_at = now + self.kafka_backoff.next()
                        state = AWAKE if state == SETTLING else state
                    elif self.taken:  # writers are busy: let rows gather a moment (writers don't notify)
                        self.kafka_backoff.reset()
                        drain_at = now + self.window.seconds()
                    else:
                        self.kafka_backoff.reset()
                        drain_at = now + (self.settings.outbox_poll_seconds if empty else HELD_RETRY_SECONDS)
                        if state == AWAKE and empty:
                            xids, state = wakeup.fall_asleep(cur), SETTLING
                            log.debug("settling", extra={"in_flight": len(xids)})
                            settle_wait = SETTLE_CHECK_SECONDS[0]
                            check_at = time.monotonic() + settle_wait
                            continue  # no xids in flight: the last drain is due at once
                        if state == SETTLING and not xids:  # that was the drain after the wait
                            state = ASLEEP
                            log.debug("asleep")
                wait = max(0.0, min(drain_at, check_at if state == SETTLING else drain_at) - time.monotonic())
                # A notification can arrive with the replies to the drain's own queries: psycopg2 has
                # then already moved it into conn.notifies and the socket stays quiet, so don't wait.
                if conn.notifies:
                    wait = 0.0
                # Waits are sliced so that a long Kafka backoff still beats (citycache/runtime/timing.py).
                ready, _, _ = select.select([conn, self.shutdown], [], [], min(wait, timing.BEAT_SECONDS))
                if self.shutdown in ready:
                    self.shutdown.clear_wakeups()
                if conn in ready:
                    conn.poll()
                while conn.notifies:
                    self.check_payload(conn.notifies.pop(0).payload)
                    if self.kafka_backoff.attempt == 0:  # while Kafka is failing, keep to the backoff
                        woken = True

    @staticmethod
    def check_payload(payload: str) -> None:
        try:
            parse_code(payload)
        except BadEvent as exc:
            BAD_EVENTS.labels("notify").inc()
            # Still a wake-up: the outbox, not the payload, says what to invalidate.
            log.warning("bad notify payload skipped", extra={"payload": payload[:64], "error": str(exc)})

    def drain(self, cur, first_sql: str, sql: str) -> bool | None:
        """Publish and delete outbox batches while they come back full, one commit per batch; `taken`
        says how many rows were taken, and the window learns the rate they came at since the last drain.

        True: the outbox is empty. False: rows are left (taken by another listener, or more than a
        batch). None: Kafka failed and the batch was rolled back (kept for the retry)."""
        started, self.taken = time.monotonic(), 0
        try:
            return self._drain(cur, first_sql, sql)
        finally:
            self.window.observe(self.taken, started - self.last_drain_at)
            self.last_drain_at = started

    def _drain(self, cur, first_sql: str, sql: str) -> bool | None:
        take = first_sql
        while True:
            try:
                grouped = outbox.take(cur, take, BATCH_SIZE)
                rows = sum(count for *_, count in grouped)
                take = sql
                batch, bad = outbox.to_events(grouped)
                for code in bad:
                    log.warning("bad outbox code skipped", extra={"code": code[:64]})
                BAD_EVENTS.labels("outbox").inc(len(bad))
                if batch:
                    self.publisher.publish(batch)
                    PUBLISHED.inc(len(batch))
                cur.execute("COMMIT")
            except PublishError as exc:
                cur.execute("ROLLBACK")
                log.warning("kafka unavailable, outbox kept for retry",
                            extra={"error": str(exc), "rows": rows})
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
            log.info("published", extra={"rows": rows, "codes": [e.code for e in batch][:20],
                                         "events": len(batch)})
            if rows < BATCH_SIZE:
                return False


def main() -> None:
    settings = get_settings()
    configure_logging("pg_listener", settings.log_level)
    log.info("capture mode", extra={"mode": settings.capture_mode})
    metrics.setup(settings)
    shutdown = Shutdown().install()
    publisher = Publisher(settings, client_id="pg_listener", should_stop=lambda: shutdown.requested)
    listener = PgListener(settings, shutdown, publisher)
    publisher.while_waiting = listener.heartbeat.beat
    listener.run()


if __name__ == "__main__":
    main()
