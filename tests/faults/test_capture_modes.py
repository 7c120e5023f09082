"""The guarantees in both capture modes: every write kind, a country move, and the faults (listener down
during writes, kill -9 mid-batch, Postgres restart), with a pg_listener of the test's own per mode.

In place of the supervised listener (notify mode), the test runs its own in the mode under test; when
it ends, the supervised one starts again and, finding logical mode's slot, turns the triggers back on.
"""
from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from citycache.write.window import FULL_RATE
from tests.support import run_ops, wait_until
from tests.listeners import OwnListeners, in_a_drain
from tests.faults.test_faults import CODES, run_burst

MODES = ["notify", "logical"]


class Capture:
    """The mode's listener: start, stop, kill -9 and restart (as supervisord would)."""

    def __init__(self, own: OwnListeners, mode: str, **env: str) -> None:
        self.own, self.mode, self.env = own, mode, env
        self.listener = None

    def start(self) -> None:
        self.listener = self.own.start(CAPTURE_MODE=self.mode, **self.env)

    def stop(self) -> None:
        self.listener.stop()

    def kill_and_restart(self) -> None:
        self.listener.kill()
        self.start()


@pytest.fixture(params=MODES)
def capture(request, settings, tmp_path):
    yield from _capture(request.param, settings, tmp_path)


# A long window, so that the test below tells it apart from a publish per drain at any commit rate.
WIDE_WINDOW_MS = 1000


@pytest.fixture(params=MODES)
def wide_window_capture(request, settings, tmp_path):
    yield from _capture(request.param, settings, tmp_path, CAPTURE_WINDOW_MS=str(WIDE_WINDOW_MS))


def _capture(mode_name: str, settings, tmp_path, **env: str):
    with OwnListeners(tmp_path, settings.database_url) as own:
        mode = Capture(own, mode_name, **env)
        mode.start()
        if mode_name == "logical":
            conn = psycopg2.connect(settings.database_url)
            conn.autocommit = True
            try:
                # Streaming once the slot is in use; from then on no trigger runs in a writer's commit.
                wait_until(lambda: _streaming(conn, settings.replication_slot, mode.listener.pid), timeout=30,
                           message="the logical listener to stream from its slot")
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'city'::regclass"
                                " AND tgname LIKE 'city_invalidate_%' AND tgenabled <> 'D'")
                    assert cur.fetchone()[0] == 0
            finally:
                conn.close()
        yield mode


def _streaming(conn, slot: str, pid: int) -> bool:
    """The slot is in use by this listener's replication connection (not a predecessor's lingering one)."""
    with conn.cursor() as cur:
        cur.execute("SELECT a.application_name FROM pg_replication_slots s JOIN pg_stat_activity a"
                    " ON a.pid = s.active_pid WHERE s.slot_name = %s", (slot,))
        row = cur.fetchone()
        return bool(row and row[0] == f"pg_listener {pid} wal")


@pytest.fixture
def seeded(test_cities):
    for code in CODES:
        test_cities(code, *[(f"{code}-town-{i}", 1000 * i) for i in range(1, 4)])


def test_every_write_kind_and_a_move_invalidate(capture, db, invalidated):
    with db.cursor() as cur:
        with invalidated("QQA"):
            cur.execute("INSERT INTO city (name, countrycode, district, population) VALUES ('Mover', 'QQA', '', 1)")
        with invalidated("QQA"):
            cur.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQA'")
        with invalidated("QQA"), invalidated("QQB"):  # the move: the old code and the new one
            cur.execute("UPDATE city SET countrycode = 'QQB' WHERE countrycode = 'QQA'")
        with invalidated("QQB"):
            cur.execute("DELETE FROM city WHERE countrycode = 'QQB'")


def test_truncate_invalidates_everything(capture, db, redis, invalidated):
    """TRUNCATE city and put its rows back in one transaction (as the seed's --reload does): every key goes,
    including those of codes no row is written to afterwards."""
    redis.set("cities_QQD", b"marker: a code with no rows at all", ex=600)
    with db.cursor() as cur, invalidated("QQC"), invalidated("BGR"):
        cur.execute("BEGIN")
        cur.execute("CREATE TEMP TABLE city_keep ON COMMIT DROP AS SELECT * FROM city")
        cur.execute("TRUNCATE city")
        cur.execute("INSERT INTO city SELECT * FROM city_keep")
        cur.execute("COMMIT")
    wait_until(lambda: not redis.exists("cities_QQD"), timeout=15, message="TRUNCATE's invalidate-all")


def test_listener_down_during_writes(capture, settings, base_url, seeded, fault_times):
    run_burst(settings, base_url, capture.stop, capture.start,
              f"{capture.mode}: pg_listener stopped, then started", fault_times)


def test_kill_listener_mid_batch(capture, settings, base_url, seeded, fault_times):
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True

    def kill_mid_batch():
        if capture.mode == "notify":  # caught holding a drain open: rows taken, Kafka not yet acked
            wait_until(lambda: capture.listener.pid in in_a_drain(conn), timeout=30,
                       message="the listener caught in a drain", interval=0.002)
        capture.kill_and_restart()

    try:
        run_burst(settings, base_url, kill_mid_batch, lambda: None,
                  f"{capture.mode}: kill -9 pg_listener mid-batch", fault_times)
    finally:
        conn.close()


def test_postgres_restarted(capture, settings, base_url, seeded, fault_times, pipeline_flows):
    run_burst(settings, base_url, lambda: run_ops("services.sh", "stop", "postgres"),
              lambda: run_ops("services.sh", "start", "postgres"),
              f"{capture.mode}: Postgres stopped, then started", fault_times, during_fault_committed=False)
    pipeline_flows()


def test_a_write_load_is_published_in_windows_not_per_commit(wide_window_capture, settings, db, invalidated,
                                                               test_cities):
    """4 writers commit single-row UPDATEs as fast as they can for 3 s. The listener publishes once per
    window (as long as the rate they came at says, citycache/write/window.py), one event per code: far fewer
    events than commits; and the last commit is still invalidated."""
    test_cities("QQE", *[(f"QQE-town-{i}", 1000 * i) for i in range(1, 9)])
    listener = wide_window_capture.listener
    since = listener.lines()
    stop, commits = threading.Event(), []

    def write(offset: int) -> None:
        conn = psycopg2.connect(settings.database_url)
        conn.autocommit = True
        done = 0
        try:  # not `with conn`: psycopg2 makes that one transaction, even in autocommit
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute("UPDATE city SET population = population + 1 WHERE id = (SELECT id FROM city"
                                " WHERE countrycode = 'QQE' ORDER BY id OFFSET %s LIMIT 1)", (offset,))
                    done += 1
        finally:
            conn.close()
        commits.append(done)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    with invalidated("QQE", timeout=30):
        started = time.monotonic()
        for writer in writers:
            writer.start()
        stop.wait(3.0)
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
        seconds = time.monotonic() - started
    published = [r for r in listener.messages(since) if r.get("msg") == "published" and "QQE" in r.get("codes", [])]
    events = sum(r["events"] for r in published)
    # The window the documented rule gives at the rate the writers reached (README, the capture window).
    window = min(1.0, sum(commits) / seconds / FULL_RATE) ** 2 * WIDE_WINDOW_MS / 1000
    # One publish per window once the rate is known, a few more while the window widens from a quiet
    # start, and the one after the load: per drain (5 ms, as before the window) it would be hundreds.
    allowed = seconds / window + 8
    assert sum(commits) > 4 * allowed, f"too few commits to tell: {sum(commits)} in {seconds:.1f} s"
    assert events <= allowed, (f"{events} events for {sum(commits)} commits in {seconds:.1f} s; a"
                               f" {window * 1000:.0f} ms window allows {allowed:.0f}")
