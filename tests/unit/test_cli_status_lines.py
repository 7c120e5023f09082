"""`bin/cli status` reads as a table whatever is down: one aligned line per component, a short reason."""
import re

from citycache.pipeline import PipelineState
from ops.cli import status_lines

# The errors as pipeline.snapshot() reports them with Redis, Postgres and Kafka down.
DOWN = PipelineState(
    workers=None, workers_error="ConnectionError: Error 111 connecting to localhost:6409. Connection refused.",
    outbox_backlog=None,
    outbox_error='OperationalError: connection to server at "localhost" (127.0.0.1), port 5462 failed: '
                 "Connection refused",
    consumer_lag=None, lag_error="KafkaTimeoutError: KafkaTimeoutError: Unable to bootstrap from ['localhost:9122']")
UP = PipelineState(workers={"pg_listener": 1.25, "kafka_cleaner": None, "consistency_sampler": 0.5},
                   workers_error=None, outbox_backlog=0,
                   outbox_error=None, consumer_lag={1: 0, 0: 2}, lag_error=None)
ROW = re.compile(r"(pg_listener|kafka_cleaner|consistency_sampler|outbox|consumer lag) +(up|DOWN|unknown|\d+) +(\S.*)")


def columns(lines):
    rows = [ROW.fullmatch(line) for line in lines]
    assert all(rows), lines
    return {row.start(2) for row in rows}, {row.start(3) for row in rows}, [row[3] for row in rows]


def test_everything_down_gives_one_aligned_line_per_component_with_its_reason():
    lines = status_lines(DOWN)
    states, details, reasons = columns(lines)
    assert len(lines) == 5 and len(states) == 1 and len(details) == 1, lines
    assert reasons == ["redis: ConnectionError: localhost:6409 Connection refused."] * 3 + [
        "postgres: OperationalError: localhost:5462 Connection refused",
        "kafka: KafkaTimeoutError: Unable to bootstrap from ['localhost:9122']"]


def test_figures_and_a_missing_heartbeat_share_the_columns():
    lines = status_lines(UP)
    states, details, reasons = columns(lines)
    assert len(states) == 1 and len(details) == 1, lines
    assert reasons == ["heartbeat 1.2 s ago", "no heartbeat", "heartbeat 0.5 s ago", "row(s) waiting for Kafka",
                       "message(s) (p0: 2, p1: 0)"]


def test_a_long_or_multi_line_reason_is_cut_to_one_short_line():
    lines = status_lines(PipelineState(None, "x" * 300 + "\nsecond line", None, "a\nb", None, None))
    assert len(lines) == 5 and all(len(line) < 105 for line in lines), lines
    assert lines[0].endswith("…") and lines[3].endswith("postgres: a") and lines[4].endswith("kafka: unknown error")
