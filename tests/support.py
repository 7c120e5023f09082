"""Helpers shared by the tests: paths, waiting, and fault injection that proves the fault happened."""
from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.common import wait_for

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition, timeout: float = 10.0, message: str = "condition", interval: float = 0.02):
    """Poll `condition()` until it returns something truthy; fail the test with `message` on timeout."""
    try:
        return wait_for(condition, timeout, message, interval)
    except TimeoutError as exc:
        pytest.fail(str(exc))


def run_ops(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """An ops script of this clone (`run_ops("services.sh", "stop", "redis")`); fails the test on a nonzero exit."""
    result = subprocess.run([str(ROOT / "ops" / args[0]), *args[1:]], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"ops/{' '.join(args)} exited {result.returncode}: {result.stdout}{result.stderr}"
    return result


def supervisorctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """supervisorctl of this clone; with `check`, a failed command fails the test instead of passing unseen."""
    exe = Path(sys.executable).parent / "supervisorctl"  # the venv's, beside the python running pytest
    result = subprocess.run([str(exe), "-c", str(ROOT / "supervisord.conf"), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, f"supervisorctl {' '.join(args)} exited {result.returncode}: {result.stdout}"
    return result


def program_state(program: str) -> str:
    """RUNNING, STOPPED, STARTING, ... as supervisorctl reports it."""
    words = supervisorctl("status", program, check=False).stdout.split()
    return words[1] if len(words) > 1 else "UNKNOWN"


def program_pid(program: str) -> int:
    pid = int(supervisorctl("pid", program).stdout.strip())
    assert pid > 0, f"{program} has no process"
    return pid


def stop_program(program: str) -> None:
    """Stop a supervised program and assert it is really stopped before the test goes on."""
    supervisorctl("stop", program)
    assert program_state(program) == "STOPPED", f"{program} did not stop"


def start_program(program: str) -> None:
    supervisorctl("start", program)
    assert program_state(program) == "RUNNING", f"{program} did not start"


def service_running(service: str) -> bool:
    result = subprocess.run([str(ROOT / "ops" / "services.sh"), "status", service], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    return result.returncode == 0


def stop_service(service: str) -> None:
    """Stop a backing service of this clone and assert it is down before the test goes on."""
    run_ops("services.sh", "stop", service)
    assert not service_running(service), f"{service} is still running after stop"


def start_service(service: str) -> None:
    run_ops("services.sh", "start", service)
    assert service_running(service), f"{service} did not start"


class Spawned:
    """A program run by a test, its output read by a thread, so every wait on it has a deadline."""

    def __init__(self, argv: list[str], env: dict | None = None) -> None:
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        """The first line (from here on) containing `text`; the test fails if none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(0.0, remaining)) if remaining > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                pytest.fail(f"no line with {text!r} within {timeout:.0f} s; output so far:\n{''.join(self.lines)[-3000:]}")
            self.lines.append(line)
            if text in line:
                return line

    def finish(self, timeout: float) -> str:
        """Wait for the process to exit (the test fails after `timeout`); the rest of its output."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"still running {timeout:.0f} s later")
        rest = []
        while (line := self._queue.get(timeout=5)) is not None:
            rest.append(line)
        self.lines += rest
        return "".join(rest)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Background:
    """`with` starts `self._threads`, each looping until `self._stop` is set; leaving stops and joins them."""

    _threads: list[threading.Thread]
    _stop: threading.Event

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
