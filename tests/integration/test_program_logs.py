"""Each program's log is a file supervisord writes and rotates, so `supervisorctl tail` shows it live;
the API's access log is a file gunicorn writes itself, reopened on SIGUSR1, shown by `bin/cli logs`."""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import uuid
from pathlib import Path

from citycache.read.cities import key as cache_key
from citycache.runtime.logs import access_log_path
from citycache.write.deletes import invalidate
from tests.support import ROOT, supervisorctl, wait_until

# No cities under it: every GET after its key is deleted is a miss, which web logs (a 404 from the database).
UNCACHED = "QMY"


def logged_miss(http, base_url, redis, request_id: str) -> None:
    """A request that makes web log a line of its own (the cache miss), with its request id."""
    invalidate(redis, [cache_key(UNCACHED)])
    assert http.get(f"{base_url}/cities/{UNCACHED}", headers={"X-Request-ID": request_id}, timeout=10).status_code == 404


def cli_logs(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ops.cli", "logs", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_supervisorctl_tail_shows_the_apps_own_lines_with_the_requests_id(base_url, http, redis):
    request_id = f"tail-{uuid.uuid4().hex[:12]}"
    logged_miss(http, base_url, redis, request_id)
    wait_until(lambda: request_id in supervisorctl("tail", "-20000", "web").stdout, timeout=10,
               message=f"{request_id} in `supervisorctl tail web`")


def test_supervisorctl_tail_follows_the_web_log_live(base_url, http, redis):
    """What an operator types first: `supervisorctl tail -f web`, then what a request logs shows up in it."""
    exe = [sys.executable.replace("/python", "/supervisorctl"), "-c", str(ROOT / "supervisord.conf")]
    follow = subprocess.Popen([*exe, "tail", "-f", "web"], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        selector = selectors.DefaultSelector()
        selector.register(follow.stdout, selectors.EVENT_READ)
        request_id, seen, deadline = f"follow-{uuid.uuid4().hex[:12]}", b"", time.monotonic() + 15
        while request_id.encode() not in seen and time.monotonic() < deadline:
            # Ask again until the follower shows it: the follower may attach after the first request.
            logged_miss(http, base_url, redis, request_id)
            if selector.select(timeout=0.5):
                seen += follow.stdout.read1(65536)
        assert request_id.encode() in seen, seen[-2000:]
    finally:
        follow.kill()
        follow.wait()


def test_every_program_has_its_own_log_file(settings, base_url):
    """Not one stream for all: `tail pg_listener` shows pg_listener's lines and nobody else's."""
    programs = ("web", "pg_listener", "kafka_cleaner", "consistency_sampler")
    for program in programs:
        tail = supervisorctl("tail", "-20000", program).stdout
        assert f'"component": "{program}"' in tail, f"{program}: {tail[-500:]!r}"
        others = [line for line in tail.splitlines()
                  if any(f'"component": "{other}"' in line for other in programs if other != program)]
        assert not others, f"{program}'s log has other programs' lines: {others[:3]}"


def test_the_access_line_is_in_the_access_log_and_not_in_supervisords(settings, base_url, http):
    request_id = f"access-{uuid.uuid4().hex[:12]}"
    assert http.get(f"{base_url}/cities/BGR", headers={"X-Request-ID": request_id}, timeout=10).ok
    line = wait_until(lambda: next((l for l in cli_logs("access", "-n", "2000").splitlines() if request_id in l), None),
                      timeout=10, message=f"{request_id} in `bin/cli logs access`")
    access = json.loads(line)
    assert (access["logger"], access["path"], access["status"]) == ("gunicorn.access", "/cities/BGR", 200)
    assert request_id not in supervisorctl("tail", "-200000", "web").stdout, "the access line crossed supervisord"


def test_usr1_reopens_the_access_log_so_it_can_be_rotated(settings, base_url, http):
    """What logrotate does on a VM: move the file away, then SIGUSR1; new lines go to a new file."""
    path = Path(access_log_path(settings.log_dir))
    moved = path.with_name(f"access.log.test-{uuid.uuid4().hex[:8]}")
    os.rename(path, moved)
    try:
        supervisorctl("signal", "USR1", "web")
        request_id = f"reopen-{uuid.uuid4().hex[:12]}"

        def in_new_file():
            # Ask again until a reopened worker logged it: the signal reaches the workers through the master.
            http.get(f"{base_url}/health/live", headers={"X-Request-ID": request_id}, timeout=10)
            return path.exists() and request_id in path.read_text()

        wait_until(in_new_file, timeout=15, message="a request's line in the reopened access.log", interval=0.2)
    finally:
        moved.unlink()
