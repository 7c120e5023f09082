"""Each program's log is a file supervisord writes and rotates, so `supervisorctl tail` shows it live."""
from __future__ import annotations

import selectors
import subprocess
import sys
import time
import uuid

from tests.support import ROOT, supervisorctl, wait_until


def test_supervisorctl_tail_shows_a_requests_id_in_the_web_log(base_url, http):
    request_id = f"tail-{uuid.uuid4().hex[:12]}"
    assert http.get(f"{base_url}/cities/BGR", headers={"X-Request-ID": request_id}, timeout=10).ok
    wait_until(lambda: request_id in supervisorctl("tail", "-20000", "web").stdout, timeout=10,
               message=f"{request_id} in `supervisorctl tail web`")


def test_supervisorctl_tail_follows_the_web_log_live(base_url, http):
    """What an operator types first: `supervisorctl tail -f web`, then a request shows up in it."""
    exe = [sys.executable.replace("/python", "/supervisorctl"), "-c", str(ROOT / "supervisord.conf")]
    follow = subprocess.Popen([*exe, "tail", "-f", "web"], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        selector = selectors.DefaultSelector()
        selector.register(follow.stdout, selectors.EVENT_READ)
        request_id, seen, deadline = f"follow-{uuid.uuid4().hex[:12]}", b"", time.monotonic() + 15
        while request_id.encode() not in seen and time.monotonic() < deadline:
            # Ask again until the follower shows it: the follower may attach after the first request.
            http.get(f"{base_url}/health", headers={"X-Request-ID": request_id}, timeout=10)
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
