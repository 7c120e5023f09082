"""Postgres -> Kafka: LISTEN city_updates, drain the outbox, publish invalidations with acks=all.

NOTIFY is only the wake-up; the outbox rows written by db/trigger.sql are the source of truth. The
outbox is drained on every wake-up, at start and every POLL_SECONDS, so a notification missed while
this worker or its connection was down loses nothing. Rows are deleted only after Kafka acknowledged.
"""
from __future__ import annotations

import logging
import select
import time

import psycopg2

from citycache import metrics, outbox, timing
from citycache.clients import pg_connect, redis_client
from citycache.events import CHANNEL, BadEvent, parse_code
from citycache.heartbeat import Heartbeat
from citycache.backoff import Backoff
from citycache.logs import configure_logging
from citycache.metrics import BAD_EVENTS, PUBLISHED
from citycache.publisher import PublishError, Publisher
from citycache.settings import Settings, get_settings
from citycache.shutdown import Shutdown

log = logging.getLogger("pg_listener")

# The outbox is read at least this often even without a NOTIFY: it bounds how late a row can be that
# a dead listener's transaction still held locked when its successor first drained.
POLL_SECONDS = 1.0
BATCH_SIZE = 500


class PgListener:
    def __init__(self, settings: Settings, shutdown: Shutdown, publisher: Publisher) -> None:
        self.settings = settings
        self.shutdown = shutdown
        self.publisher = publisher
        self.kafka_backoff = Backoff(base=0.5, cap=timing.RECONNECT_CAP_SECONDS)
        self.heartbeat = Heartbeat(redis_client(settings, timeout=1.0), "pg_listener")

    def run(self) -> None:
        """Outer loop: (re)connect and LISTEN, serve until asked to stop; back off while Postgres is away."""
        pg_backoff = Backoff(base=0.2, cap=timing.RECONNECT_CAP_SECONDS)
        while not self.shutdown.requested:
            self.heartbeat.beat()
            conn = None
            try:
                conn = pg_connect(self.settings, autocommit=True, application_name="pg_listener")
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
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
        self.publisher.close()
        self.heartbeat.stop()
        log.info("stopped")

    def serve(self, conn) -> None:
        """Inner loop: wait for a notification, the periodic timer or a signal; drain the outbox."""
        claim_sql = outbox.claim_sql(conn)
        drain_at = time.monotonic()  # drain at start: rows may have been written while nobody listened
        while not self.shutdown.requested:
            self.heartbeat.beat()
            if time.monotonic() >= drain_at:
                if self.drain(conn, claim_sql):
                    self.kafka_backoff.reset()
                    drain_at = time.monotonic() + POLL_SECONDS
                else:
                    drain_at = time.monotonic() + self.kafka_backoff.next()
            wait = max(0.0, drain_at - time.monotonic())
            # A notification can arrive with the replies to the drain's own queries: psycopg2 has
            # then already moved it into conn.notifies and the socket stays quiet, so don't wait.
            if conn.notifies:
                wait = 0.0
            # Waits are sliced so that a long Kafka backoff still beats (citycache/timing.py).
            ready, _, _ = select.select([conn, self.shutdown], [], [], min(wait, timing.BEAT_SECONDS))
            if self.shutdown in ready:
                self.shutdown.clear_wakeups()
            if conn in ready:
                conn.poll()
            while conn.notifies:
                self.check_payload(conn.notifies.pop(0).payload)
                if self.kafka_backoff.attempt == 0:  # while Kafka is failing, keep to the backoff
                    drain_at = 0.0

    @staticmethod
    def check_payload(payload: str) -> None:
        try:
            parse_code(payload)
        except BadEvent as exc:
            BAD_EVENTS.labels("notify").inc()
            # Still a wake-up: the outbox, not the payload, says what to invalidate.
            log.warning("bad notify payload skipped", extra={"payload": payload[:64], "error": str(exc)})

    def drain(self, conn, claim_sql: str) -> bool:
        """Publish and delete outbox batches until it is empty. False when Kafka failed (rows kept)."""
        while True:
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                try:
                    rows = outbox.claim(cur, claim_sql, BATCH_SIZE)
                    if rows:
                        batch, bad = outbox.to_events(rows)
                        for code in bad:
                            log.warning("bad outbox code skipped", extra={"code": code[:64]})
                        BAD_EVENTS.labels("outbox").inc(len(bad))
                        if batch:
                            self.publisher.publish(batch)
                            PUBLISHED.inc(len(batch))
                        outbox.delete(cur, [row[0] for row in rows])
                    cur.execute("COMMIT")
                except PublishError as exc:
                    cur.execute("ROLLBACK")
                    log.warning("kafka unavailable, outbox kept for retry",
                                extra={"error": str(exc), "rows": len(rows)})
                    return False
                except BaseException:
                    if not conn.closed:
                        try:
                            cur.execute("ROLLBACK")
                        except psycopg2.Error:
                            pass
                    raise
            if rows:
                log.info("published", extra={"rows": len(rows), "codes": [e.code for e in batch][:20],
                                             "events": len(batch)})
            if len(rows) < BATCH_SIZE:
                return True


def main() -> None:
    settings = get_settings()
    configure_logging("pg_listener", settings.log_level)
    metrics.setup(settings)
    shutdown = Shutdown().install()
    publisher = Publisher(settings, client_id="pg_listener", should_stop=lambda: shutdown.requested)
    listener = PgListener(settings, shutdown, publisher)
    publisher.while_waiting = listener.heartbeat.beat
    listener.run()


if __name__ == "__main__":
    main()
