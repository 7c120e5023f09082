"""The capture window in both modes: under a write load, one publish per window, not one per commit."""
from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from citycache.read.cities import key as cache_key
from citycache.write.window import FULL_RATE
from tests.faults.test_capture_modes import MODES, _capture

# A long window, so that the test below tells it apart from a publish per drain at any commit rate.
WIDE_WINDOW_MS = 1000


@pytest.fixture(params=MODES)
def wide_window_capture(request, settings, tmp_path):
    yield from _capture(request.param, settings, tmp_path, CAPTURE_WINDOW_MS=str(WIDE_WINDOW_MS))


def test_a_write_load_is_published_in_windows_not_per_commit(wide_window_capture, settings, db, invalidated,
                                                               test_cities):
    """4 writers commit single-row UPDATEs as fast as they can for 3 s. The listener publishes once per
    window (as long as the rate they came at says, citycache/write/window.py), one event per key: far fewer
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
    published = [r for r in listener.messages(since) if r.get("msg") == "published" and cache_key("QQE") in r.get("keys", [])]
    events = sum(1 for r in published)
    # The window the documented rule gives at the rate the writers reached (README, the capture window).
    window = min(1.0, sum(commits) / seconds / FULL_RATE) ** 2 * WIDE_WINDOW_MS / 1000
    # One publish per window once the rate is known, a few more while the window widens from a quiet
    # start, and the one after the load: per drain (5 ms, as before the window) it would be hundreds.
    allowed = seconds / window + 8
    assert sum(commits) > 4 * allowed, f"too few commits to tell: {sum(commits)} in {seconds:.1f} s"
    assert events <= allowed, (f"{events} publishes of QQE for {sum(commits)} commits in {seconds:.1f} s; a"
                               f" {window * 1000:.0f} ms window allows {allowed:.0f}")
