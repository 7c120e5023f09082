"""bin/run never leaves a mess: every way out ends with nothing of the clone running, and a run
after a crash stops the leftovers first. A second clone, on ports of its own, runs bin/run in a real
pseudo-terminal; a census of /proc says what of that clone is left. Select with `-m stack`."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support import wait_until
from tests.stack.second_clone import Clone, Terminal

# Each case starts a whole stack (Kafka is the slow part); the first starts two.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

START_TIMEOUT = 240  # a cold start formats Kafka's storage and initialises Postgres
STOP_TIMEOUT = 120
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    path = tmp_path_factory.mktemp("second-clone").resolve()
    clone = Clone(path)
    yield clone
    clone.run("bin/stop")
    left = clone.census()
    clone.remove()
    print("\nseconds until nothing of the clone was left:", TIMES, file=sys.__stderr__)
    assert not left, left


def start(clone: Clone, argv: list[str] | None = None, first=lambda: True) -> Terminal:
    """bin/run (or ARGV) in a new terminal; returns once `first()` held and then /health answered 200."""
    terminal = Terminal(argv or [str(clone.path / "bin/run")], cwd=clone.path, env=clone.env)
    for condition, what in ((first, "the precondition"), (clone.healthy, "/health 200")):
        wait_until(lambda: condition() or terminal.process.poll() is not None, timeout=START_TIMEOUT,
                   message=f"bin/run: {what}", interval=0.5)
        assert terminal.process.poll() is None, terminal.text()[-3000:]
    return terminal


def nothing_left(clone: Clone, case: str, since: float, terminal: Terminal | None = None) -> None:
    """Waits until the census is empty; records how long that took after the event."""
    wait_until(lambda: not clone.census(), timeout=STOP_TIMEOUT,
               message=f"{case}: nothing of the clone left running (census: {clone.census()})", interval=0.2)
    TIMES[case] = round(time.monotonic() - since, 1)
    if terminal is not None:
        terminal.close()


def test_kill_9_of_bin_run_then_the_next_run_stops_the_leftovers_and_the_terminal_closing(clone):
    first = start(clone)
    supervisord = clone.pid_file("supervisord.pid")
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    first.close()
    assert supervisord in [int(line.split()[0]) for line in clone.census()], "supervisord outlives bin/run -9"

    since = time.monotonic()
    second = start(clone, first=lambda: not os.path.exists(f"/proc/{supervisord}"))
    TIMES["kill -9 bin/run, then bin/run: healthy again"] = round(time.monotonic() - since, 1)
    assert "an earlier run of this clone left these running" in second.text()
    assert f"supervisord pid {supervisord}" in second.text()

    # No crash loop: web, unable to bind, goes FATAL after a few tries, its reason in the log.
    ctl = ("bin/supervisorctl",)
    assert clone.run(*ctl, "stop", "web").returncode == 0
    with foreign_listener(clone.ports["http"]):
        clone.run(*ctl, "start", "web", timeout=120)
        wait_until(lambda: "FATAL" in clone.run(*ctl, "status", "web").stdout, timeout=90,
                   message="web FATAL after a few tries", interval=1)
    log = (clone.path / ".run" / "app.log").read_text()
    assert "gave up: web entered FATAL state, too many start retries too quickly" in log
    # supervisord's own lines are in .run/app.log; web's (gunicorn's reason) in its own file, LOG_DIR/web.log.
    assert "Connection in use" in (clone.path / ".run" / "log" / "web.log").read_text()
    assert clone.run(*ctl, "start", "web").returncode == 0
    wait_until(clone.healthy, timeout=60, message="web back once the port is free", interval=0.5)

    since = time.monotonic()
    second.close()
    nothing_left(clone, "terminal closed (SIGHUP)", since)
    assert "got SIGHUP" in (clone.path / ".run" / "run.log").read_text()


def test_ctrl_c_with_the_output_piped_to_tee(clone):
    terminal = start(clone, ["bash", "-c", f"{clone.path}/bin/run 2>&1 | tee {clone.path}/.run/tee.log"])
    since = time.monotonic()
    terminal.type(b"\x03")
    nothing_left(clone, "Ctrl-C, output piped to tee", since, terminal)
    run_log = (clone.path / ".run" / "run.log").read_text()
    assert "got SIGINT" in run_log and run_log.rstrip().endswith("stopped; nothing of this clone is running"), \
        run_log[-2000:]


def test_the_reader_of_its_output_going_away(clone):
    tee_log = clone.path / ".run" / "tee.log"
    terminal = start(clone, ["bash", "-c", f"{clone.path}/bin/run | tee {tee_log}"])
    tee = pid_of(["tee", str(tee_log)])
    since = time.monotonic()
    os.kill(tee, signal.SIGKILL)
    requests.get(f"http://127.0.0.1:{clone.ports['http']}/health/live", timeout=5)  # a line to show: SIGPIPE
    nothing_left(clone, "SIGPIPE (the reader, tee, killed)", since, terminal)
    assert "the output's reader went away" in (clone.path / ".run" / "run.log").read_text()


def test_bin_stop_from_another_terminal_sends_sigterm(clone):
    terminal = start(clone)
    since = time.monotonic()
    result = clone.run("bin/stop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "asking bin/run" in result.stdout
    nothing_left(clone, "bin/stop (SIGTERM to bin/run)", since, terminal)
    assert "got SIGTERM: stopping the programs, then the services" in terminal.text()


def test_supervisord_dying(clone):
    terminal = start(clone)
    since = time.monotonic()
    os.kill(clone.pid_file("supervisord.pid"), signal.SIGKILL)
    nothing_left(clone, "kill -9 supervisord", since)
    assert terminal.process.wait(timeout=10) == 1
    assert "supervisord exited" in terminal.text()
    terminal.close()


@pytest.mark.parametrize("port, setting", [("postgres", "DATABASE_URL=postgresql://postgres:***@localhost:"),
                                           ("redis", "REDIS_URL=redis://localhost:"),
                                           ("kafka", "KAFKA_BOOTSTRAP_SERVERS=localhost:"),
                                           ("kafka_controller", "KAFKA_BOOTSTRAP_SERVERS=localhost:"),
                                           ("s3", "S3_ENDPOINT=localhost:"),
                                           ("http", "HTTP_PORT=")])
def test_a_port_taken_by_another_process_fails_fast_with_the_setting_to_change(clone, port, setting):
    number = clone.ports["kafka"] + 1 if port == "kafka_controller" else clone.ports[port]
    with foreign_listener(number) as foreign:
        since = time.monotonic()
        result = clone.run("bin/run", timeout=60)
        TIMES[f"port {port} taken: bin/run exits"] = round(time.monotonic() - since, 1)
        assert result.returncode != 0
        lines = [line for line in (result.stdout + result.stderr).splitlines() if "port" in line and "taken" in line]
        assert len(lines) == 1, result.stdout + result.stderr
        assert re.search(rf"port {number} \(.*\) is taken by another process \(python3? pid {foreign.pid}\); "
                         rf"set {re.escape(setting)}\d+\S* in \.env$", lines[0]), lines[0]
        assert not clone.census()
        assert foreign.poll() is None, "the foreign process was left alone"


def test_cli_status_with_everything_down_is_one_aligned_line_per_component(clone):
    assert not clone.census()
    result = clone.run("bin/cli", "status", timeout=120)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    rows = [re.fullmatch(r"(pg_listener|kafka_cleaner|consistency_sampler|outbox|consumer lag) +(up|DOWN|unknown|\d+)"
                         r" +(\S.*)", line) for line in lines]
    assert all(rows) and [row[1] for row in rows] == ["pg_listener", "kafka_cleaner", "consistency_sampler", "outbox",
                                                      "consumer lag"], result.stdout
    assert len({row.start(2) for row in rows}) == 1 and len({row.start(3) for row in rows}) == 1, result.stdout
    assert all(len(line) <= 100 for line in lines), result.stdout


class foreign_listener:
    """Someone else's server on PORT: a process started from outside the clone."""

    def __init__(self, port: int) -> None:
        self.port = port

    def __enter__(self) -> subprocess.Popen:
        code = ("import socket, sys, time; s = socket.socket(); "
                "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                f"s.bind(('127.0.0.1', {self.port})); s.listen(); print('ok', flush=True); time.sleep(3600)")
        self.process = subprocess.Popen([sys.executable, "-c", code], cwd="/", stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ok"
        return self.process

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait()
        wait_until(lambda: port_free(self.port), timeout=10, message=f"port {self.port} free again")


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def pid_of(argv: list[str]) -> int:
    """The process running exactly ARGV."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:-1] == [a.encode() for a in argv]:
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError(f"no process runs {argv}")
