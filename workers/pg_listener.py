"""Postgres -> Kafka: LISTEN city_updates, drain the outbox, publish invalidations with acks=all.

NOTIFY is only the wake-up; the outbox rows the rules' triggers write are the source of truth. The
outbox is drained on every wake-up, at start and every OUTBOX_POLL_SECONDS, so a notification missed
while this worker or its connection was down loses nothing. Rows are deleted only after Kafka acknowledged.

Writers notify only while this worker may be asleep (citycache/write/wakeup.py): awake, it keeps draining
until a drain comes back empty, then does the handshake (flag, wait out in-flight writers, drain once
more) before it sleeps. Any number of listeners can share one database: each takes rows no other holds
(SKIP LOCKED), and none sleeps while rows are left that another one holds, in case that one dies.

CAPTURE_MODE=logical reads the WAL instead (workers/logical_capture.py); both modes share the reconnect
loop, the publish and the outbox drain (citycache/write/capture.py).
"""
from __future__ import annotations

import logging
import select
import time

from citycache.rules import BadRules
from citycache.runtime import metrics, timing
from citycache.runtime.clients import redis_client
from citycache.runtime.heartbeat import Heartbeat
from citycache.runtime.logs import configure_logging
from citycache.runtime.metrics import BAD_EVENTS
from citycache.runtime.shutdown import Shutdown
from citycache.runtime.startup import checked_rules, refusing_bad_config
from citycache.settings import get_settings
from citycache.tables import Table
from citycache.write import replication, triggers, wakeup
from citycache.write.capture import Capture, OutboxDrain
from citycache.write.dbnames import CHANNEL
from citycache.write.publisher import Publisher
from citycache.write.window import Window
from workers.logical_capture import LogicalCapture

log = logging.getLogger("pg_listener")

# After a drain that found rows, the next one waits at least this long (citycache/write/window.py: longer,
# up to CAPTURE_WINDOW_MS, while rows come fast): rows of busy writers gather into fewer, larger batches.
SHORTEST_WINDOW_SECONDS = 0.005
# Rows another listener holds in a drain it has not committed: look again this soon, it may have died.
HELD_RETRY_SECONDS = 0.02
# How often a settling listener checks whether the writers it waits for have ended (doubling).
SETTLE_CHECK_SECONDS = (0.0005, 0.05)
# A payload no trigger writes: the values' text, a table's name or '*' never hold these.
MAX_PAYLOAD = 1024
AWAKE, SETTLING, ASLEEP = "awake", "settling", "asleep"


class NotifyCapture:
    """CAPTURE_MODE=notify: the triggers fill the outbox; NOTIFY wakes this loop when it may sleep."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.window = Window(SHORTEST_WINDOW_SECONDS, capture.settings.capture_window_ms / 1000)

    def session(self, conn, tables: dict[str, Table]) -> None:
        problems = triggers.not_installed(conn, tables)
        if problems:
            raise BadRules(f"pg_listener: {problems[0]}: run bin/cli schema install, then "
                           f"bin/supervisorctl restart all")
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANNEL}")
        if replication.prepare_notify(conn, self.capture.settings.replication_slot, tables):
            log.warning("logical mode's slot dropped; everything invalidated once",
                        extra={"slot": self.capture.settings.replication_slot})
        log.info("listening", extra={"channel": CHANNEL, "tables": list(tables)})
        self.serve(conn)

    def serve(self, conn) -> None:
        """Drain on a notification, the periodic timer or the handshake; sleep in select()."""
        capture, shutdown = self.capture, self.capture.shutdown
        # Awake at start: drain, then do the handshake, whatever the flag says (a listener may have died
        # between clearing it and setting it again).
        state, xids, woken = AWAKE, [], False
        drain_at, check_at, settle_wait = time.monotonic(), 0.0, SETTLE_CHECK_SECONDS[0]
        with conn.cursor() as cur:
            drainer = OutboxDrain(capture, cur, self.window)
            while not shutdown.requested:
                capture.heartbeat.beat()
                now = time.monotonic()
                if state == SETTLING and xids and now >= check_at:
                    xids = wakeup.still_in_flight(cur, xids)
                    settle_wait = min(settle_wait * 2, SETTLE_CHECK_SECONDS[1])
                    check_at = now + settle_wait
                if woken or now >= drain_at or (state == SETTLING and not xids):
                    waking = woken and state == ASLEEP
                    empty = drainer.drain(waking=waking)
                    woken, now = False, time.monotonic()
                    if waking:
                        state = AWAKE
                        log.debug("awake")
                    if empty is None:  # Kafka failed: rows kept, retry after the backoff, then settle anew
                        drain_at = now + capture.kafka_backoff.next()
                        state = AWAKE if state == SETTLING else state
                    elif drainer.taken:  # writers are busy: let rows gather a moment (writers don't notify)
                        capture.kafka_backoff.reset()
                        drain_at = now + self.window.seconds()
                    else:
                        capture.kafka_backoff.reset()
                        drain_at = now + (capture.settings.outbox_poll_seconds if empty else HELD_RETRY_SECONDS)
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
                ready, _, _ = select.select([conn, shutdown], [], [], min(wait, timing.BEAT_SECONDS))
                if shutdown in ready:
                    shutdown.clear_wakeups()
                if conn in ready:
                    conn.poll()
                while conn.notifies:
                    check_payload(conn.notifies.pop(0).payload)
                    if capture.kafka_backoff.attempt == 0:  # while Kafka is failing, keep to the backoff
                        woken = True


def check_payload(payload: str) -> None:
    """A payload is a wake-up, never trusted (the outbox says what changed); one that no trigger
    writes is logged."""
    if len(payload) > MAX_PAYLOAD or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in payload):
        BAD_EVENTS.labels("notify").inc()
        log.warning("bad notify payload skipped", extra={"payload": payload[:64]})


@refusing_bad_config
def main() -> None:
    settings = get_settings()
    configure_logging("pg_listener", settings.log_level)
    metrics.setup(settings)
    rules = checked_rules(settings, against_database=False)  # each connection checks the tables
    log.info("capture mode", extra={"mode": settings.capture_mode, "rules": settings.invalidation_rules,
                                    "tables": list(rules.tables)})
    shutdown = Shutdown().install()
    publisher = Publisher(settings, client_id="pg_listener", should_stop=lambda: shutdown.requested)
    heartbeat = Heartbeat(redis_client(settings, timeout=1.0), "pg_listener")
    publisher.while_waiting = heartbeat.beat
    capture = Capture(settings, rules, shutdown, publisher, heartbeat)
    logical = settings.capture_mode == "logical"
    mode = LogicalCapture(capture) if logical else NotifyCapture(capture)
    try:
        capture.run(mode.session, precheck=replication.require_logical_wal if logical else None)
    finally:
        publisher.close()
        heartbeat.stop()
    log.info("stopped")


if __name__ == "__main__":
    main()
