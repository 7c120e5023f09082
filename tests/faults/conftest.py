"""Fault tests kill workers on purpose: forget their heartbeats after each test."""
import os
import socket

import pytest

from citycache.runtime.clients import redis_client
from citycache.runtime.heartbeat import KEY_PREFIX


@pytest.fixture(autouse=True)
def forget_killed_workers(settings):
    """After each test, drop the heartbeats of worker processes on this host that no longer exist.

    A kill -9 leaves its instance's key until the TTL runs out (20 s), rightly: a real dead worker
    is only known by its silence. Tests kill on purpose, and the next test must not see a ghost.
    """
    yield
    client = redis_client(settings)
    try:
        for key in client.scan_iter(match=f"{KEY_PREFIX}*:{socket.gethostname()}:*", count=100):
            pid = int(key.rsplit(b":", 1)[1])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                client.delete(key)
    except Exception:  # Redis may be the service a test just stopped: nothing to clean then
        pass
    finally:
        client.close()
