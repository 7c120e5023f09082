"""CAPTURE_MODE=logical: Postgres -> Kafka from the WAL (pgoutput), nothing inside the writers' transactions.

Reads the slot through psycopg2's replication connection in the same select() loop shape as notify
mode. Committed transactions are batched while more are waiting and for as long as the window says
(citycache/write/window.py: at once while they trickle, up to CAPTURE_WINDOW_MS while they pour in),
turned into one event per key, published with acks=all, and only then is the slot's flush position
confirmed: a crash, a kill -9 or a Kafka outage makes Postgres send the unconfirmed ones again
(at-least-once). A periodic logical message keeps the slot moving while the tables are idle, so it
does not pin WAL.
"""
from __future__ import annotations

import logging
import os
import select
import time

import psycopg2
import psycopg2.extras

from citycache.runtime import timing
from citycache.tables import Table
from citycache.write import dbnames, replication
from citycache.write.capture import Capture, OutboxDrain
from citycache.write.coalesce import Coalescer
from citycache.write.pgoutput import Decoder, Transaction
from citycache.write.window import Window

log = logging.getLogger("pg_listener")

# Transactions per publish at most: a full window at the highest rates fits in one.
BATCH_TRANSACTIONS = 50_000
READ_BURST = 10_000  # messages read before the loop looks at the clock again
WINDOW_READ_SECONDS = 0.02  # while a window is open, read what came this often
STATUS_SECONDS = 5.0  # standby status to the server at least this often (well under wal_sender_timeout)


def to_changes(transactions: list[Transaction], all_rules) -> Coalescer:
    """The batch's changes; the last transaction's end LSN as the event id."""
    batch = Coalescer()
    event_id = transactions[-1].end_lsn if transactions else None
    for tx in transactions:
        for rule in (all_rules if tx.everything else tx.truncated):
            batch.truncate(rule, tx.committed_at, event_id=event_id)
        for rule, values in tx.changes:
            batch.change(rule, values, tx.committed_at, event_id=event_id)
    return batch


class LogicalCapture:
    """The logical-mode session of pg_listener: prepare the slot and publication, drain what the
    triggers left, then stream."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.settings = capture.settings
        self.slot = self.settings.replication_slot
        self.next_heartbeat = 0.0
        # Shortest window 0: a change that trickles in is published as soon as nothing else is waiting.
        self.window = Window(0.0, self.settings.capture_window_ms / 1000)

    def session(self, conn, tables: dict[str, Table]) -> None:
        created, short = replication.prepare_logical(conn, self.slot, tables)
        if created:
            log.info("replication slot created", extra={"slot": self.slot})
        if short:  # published before without all of its key columns: what the slot holds lacks them
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {dbnames.OUTBOX} (tbl, vals) SELECT unnest(%s::text[]), NULL", (short,))
            log.warning("a rule's columns were not all published; its keys invalidated once", extra={"tables": short})
        with conn.cursor() as cur:  # rows the triggers wrote before this mode took over
            OutboxDrain(self.capture, cur, Window(0.0, 0.0)).drain_until_published()
        repl = psycopg2.connect(self.settings.database_url, connect_timeout=3,
                                connection_factory=psycopg2.extras.LogicalReplicationConnection,
                                application_name=f"pg_listener {os.getpid()} wal")
        try:
            self.stream(conn, repl, {(t.schema, t.name): t.rule for t in tables.values()})
        finally:
            repl.close()

    def stream(self, conn, repl, rules_by_table) -> None:
        cur = repl.cursor()
        cur.start_replication(slot_name=self.slot, decode=False, options={
            "proto_version": "1", "publication_names": dbnames.PUBLICATION, "messages": "true"})
        log.info("streaming", extra={"slot": self.slot, "publication": dbnames.PUBLICATION})
        decoder, pending, confirmed_at = Decoder(rules_by_table), [], time.monotonic()
        published_at = due = time.monotonic()
        capture, shutdown = self.capture, self.capture.shutdown
        read, feed = cur.read_message, decoder.feed
        while not shutdown.requested:
            capture.heartbeat.beat()
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
                if not capture.publish(to_changes(pending, capture.rules.rules), transactions=len(pending)):
                    capture.pause(capture.kafka_backoff.next())
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
