"""CAPTURE_MODE=logical: Postgres -> Kafka from the WAL (pgoutput), nothing inside the writers' transactions.

Reads the slot through psycopg2's replication connection in the same select() loop shape as notify
mode. Committed transactions are batched while more are waiting and for as long as the window says
(citycache/write/window.py: at once while they trickle, up to CAPTURE_WINDOW_MS while they pour in),
coalesced per code, published with acks=all, and only then is the slot's flush position confirmed: a crash, a kill -9 or a Kafka outage
makes Postgres send the unconfirmed ones again (at-least-once). A periodic logical message keeps the
slot moving while city is idle, so it does not pin WAL.
"""
from __future__ import annotations

import logging
import os
import select
import time

import psycopg2
import psycopg2.extras

from citycache.runtime import timing
from citycache.write import outbox, replication
from citycache.runtime.backoff import Backoff
from citycache.runtime.clients import pg_connect
from citycache.events import Invalidation
from citycache.runtime.metrics import PUBLISHED
from citycache.write.pgoutput import Decoder, Transaction
from citycache.write.publisher import PublishError
from citycache.write.window import Window

log = logging.getLogger("pg_listener")

# Transactions per publish at most: a full window at the highest rates fits in one.
BATCH_TRANSACTIONS = 50_000
READ_BURST = 10_000  # messages read before the loop looks at the clock again
WINDOW_READ_SECONDS = 0.02  # while a window is open, read what came this often
STATUS_SECONDS = 5.0  # standby status to the server at least this often (well under wal_sender_timeout)


def to_events(transactions: list[Transaction]) -> list[Invalidation]:
    """One event per code over the batch (first and last commit time), the end LSN as the event id."""
    by_code: dict[str, Invalidation] = {}
    for tx in transactions:
        for code in tx.codes:
            seen = by_code.get(code)
            by_code[code] = Invalidation(
                code, event_id=tx.end_lsn,
                committed_at=tx.committed_at if seen is None else min(seen.committed_at, tx.committed_at),
                last_committed_at=tx.committed_at)
    return list(by_code.values())


class LogicalCapture:
    """The logical-mode body of pg_listener: one replication connection, reconnected with backoff."""

    def __init__(self, listener) -> None:
        self.listener = listener  # the PgListener: settings, shutdown, publisher, heartbeat, outbox drain
        self.settings = listener.settings
        self.slot = self.settings.replication_slot
        self.next_heartbeat = 0.0
        # Shortest window 0: a change that trickles in is published as soon as nothing else is waiting.
        self.window = Window(0.0, self.settings.capture_window_ms / 1000)

    def run(self) -> None:
        pg_backoff = Backoff(base=0.2, cap=timing.RECONNECT_CAP_SECONDS)
        while not self.listener.shutdown.requested:
            self.listener.heartbeat.beat()
            conn = repl = None
            try:
                conn = pg_connect(self.settings, autocommit=True, application_name=f"pg_listener {os.getpid()}")
                replication.require_logical_wal(conn)
                if replication.prepare_logical(conn, self.slot):
                    log.info("replication slot created", extra={"slot": self.slot})
                self.drain_outbox(conn)
                repl = psycopg2.connect(self.settings.database_url, connect_timeout=3,
                                        connection_factory=psycopg2.extras.LogicalReplicationConnection,
                                        application_name=f"pg_listener {os.getpid()} wal")
                pg_backoff.reset()
                self.stream(conn, repl)
            except psycopg2.Error as exc:
                delay = pg_backoff.next()
                log.warning("postgres unavailable, reconnecting",
                            extra={"error": str(exc).strip(), "retry_in_s": delay})
                self.listener.shutdown.sleep(delay, every=timing.BEAT_SECONDS, tick=self.listener.heartbeat.beat)
            finally:
                for c in (repl, conn):
                    if c is not None:
                        c.close()

    def drain_outbox(self, conn) -> None:
        """Rows the triggers wrote before this mode took over (retried until Kafka takes them)."""
        take_plain, _ = outbox.take_sql(conn)
        with conn.cursor() as cur:
            while self.listener.drain(cur, take_plain, take_plain) is None and not self.listener.shutdown.requested:
                self.listener.shutdown.sleep(self.listener.kafka_backoff.next(), every=timing.BEAT_SECONDS,
                                             tick=self.listener.heartbeat.beat)

    def stream(self, conn, repl) -> None:
        cur = repl.cursor()
        cur.start_replication(slot_name=self.slot, decode=False, options={
            "proto_version": "1", "publication_names": replication.PUBLICATION, "messages": "true"})
        log.info("streaming", extra={"slot": self.slot, "publication": replication.PUBLICATION})
        decoder, pending, confirmed_at = Decoder(), [], time.monotonic()
        published_at = due = time.monotonic()
        shutdown = self.listener.shutdown
        read, feed = cur.read_message, decoder.feed
        while not shutdown.requested:
            self.listener.heartbeat.beat()
            if time.monotonic() >= self.next_heartbeat:
                replication.heartbeat(conn)
                self.next_heartbeat = time.monotonic() + self.settings.logical_heartbeat_seconds
            # Read what is waiting in one go: a busy server never leaves the socket empty, so a burst
            # is bounded, and the window's deadline is looked at between bursts.
            message = None
            for _ in range(READ_BURST):
                message = read()
                if message is None:
                    # psycopg2 reads the socket once per call that finds nothing buffered: more may
                    # be waiting, and a burst cut short here made the next publish's rate look
                    # sky-high (a 250 ms window at 1,600 commits/s).
                    if not select.select([repl], [], [], 0)[0]:
                        break
                    continue
                done = feed(message.payload)
                if done is not None:
                    if not pending:
                        due = time.monotonic() + self.window.seconds()
                    pending.append(done)
                    if len(pending) >= BATCH_TRANSACTIONS:
                        break
            now = time.monotonic()
            if pending and not decoder.in_transaction and (now >= due or len(pending) >= BATCH_TRANSACTIONS):
                self.window.observe(len(pending), now - published_at)
                published_at = now
                if not self.publish(pending):
                    shutdown.sleep(self.listener.kafka_backoff.next(), every=timing.BEAT_SECONDS,
                                   tick=self.listener.heartbeat.beat)
                    return  # reconnect: Postgres sends again everything not confirmed
                # Sent now (force), not at psycopg2's next status interval: the slot moves at once.
                # Only ever a commit's end: psycopg2 moves the position on to the server's keepalive
                # WAL end by itself once the client confirmed the last message it read, which is safe
                # at a transaction boundary (see the README's logical-mode notes).
                cur.send_feedback(write_lsn=pending[-1].end_lsn, flush_lsn=pending[-1].end_lsn, force=True)
                pending, confirmed_at = [], time.monotonic()
                continue
            if message is not None:
                continue  # the burst ended with more waiting
            if now - confirmed_at >= STATUS_SECONDS:
                cur.send_feedback()
                confirmed_at = now
            wake_at = min(self.next_heartbeat, confirmed_at + STATUS_SECONDS, due if pending else float("inf"))
            wait = max(0.0, wake_at - time.monotonic())
            # While a window is open (complete transactions pending, not yet due) what follows is
            # read in bursts every WINDOW_READ_SECONDS, not as it comes: reading each message as it
            # came cost a wake-up per message (three per commit), half of this process's CPU at
            # 10,000 commits/s. Not reading at all until the window closed left more backlog than
            # one burst per window clears (figure 3's drain after the load took 2.7 s).
            watched = [repl, shutdown]
            if pending and not decoder.in_transaction and wait > 0:
                watched, wait = [shutdown], min(wait, WINDOW_READ_SECONDS)
            ready, _, _ = select.select(watched, [], [], min(wait, timing.BEAT_SECONDS))
            if shutdown in ready:
                shutdown.clear_wakeups()

    def publish(self, transactions: list[Transaction]) -> bool:
        batch = to_events(transactions)
        if not batch:  # heartbeats only: nothing to publish, the position may still move on
            return True
        try:
            self.listener.publisher.publish(batch)
        except PublishError as exc:
            log.warning("kafka unavailable, unconfirmed changes will be sent again",
                        extra={"error": str(exc), "transactions": len(transactions)})
            return False
        self.listener.kafka_backoff.reset()
        PUBLISHED.inc(len(batch))
        log.info("published", extra={"transactions": len(transactions), "events": len(batch),
                                     "codes": [e.code for e in batch][:20]})
        return True
