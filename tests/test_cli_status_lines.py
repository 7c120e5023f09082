"""`bin/cli status` reads as a table whatever is down: one aligned line per component, a short reason."""
import re

from ops.cli import status_lines

DOWN = {
    "workers": {w: {"up": False, "error": "Error 111 connecting to localhost:6409. Connection refused."}
                for w in ("pg_listener", "kafka_cleaner")},
    "outbox_backlog": None,
    "outbox_error": 'connection to server at "localhost" (127.0.0.1), port 5462 failed: Connection refused\n'
                    "\tIs the server running on that host and accepting TCP/IP connections?",
    "consumer_lag": None,
    "lag_error": "KafkaTimeoutError: KafkaTimeoutError: Unable to bootstrap from ['localhost:9122']",
}
UP = {"workers": {"pg_listener": {"up": True, "age_s": 1.25}, "kafka_cleaner": {"up": False}},
      "outbox_backlog": 0, "consumer_lag": {1: 0, 0: 2}}
ROW = re.compile(r"(pg_listener|kafka_cleaner|outbox|consumer lag) +(up|ok|DOWN|unknown) +(\S.*)")


def columns(lines):
    rows = [ROW.fullmatch(line) for line in lines]
    assert all(rows), lines
    return {row.start(2) for row in rows}, {row.start(3) for row in rows}, [row[3] for row in rows]


def test_everything_down_gives_one_aligned_line_per_component_with_its_reason():
    lines = status_lines(DOWN)
    states, details, reasons = columns(lines)
    assert len(lines) == 4 and len(states) == 1 and len(details) == 1, lines
    assert reasons == ["redis: Error 111 connecting to localhost:6409. Connection refused."] * 2 + [
        "postgres: localhost:5462 Connection refused",
        "kafka: KafkaTimeoutError: Unable to bootstrap from ['localhost:9122']"]


def test_figures_and_a_missing_heartbeat_share_the_columns():
    lines = status_lines(UP)
    states, details, reasons = columns(lines)
    assert len(states) == 1 and len(details) == 1, lines
    assert reasons == ["heartbeat 1.2 s ago", "no heartbeat", "0 row(s) waiting for Kafka", "2 message(s) (p0: 2, p1: 0)"]


def test_a_long_reason_is_cut_to_one_short_line():
    lines = status_lines({**DOWN, "lag_error": "x" * 300 + "\nsecond line"})
    assert len(lines) == 4 and len(lines[-1]) < 100 and lines[-1].endswith("…"), lines
