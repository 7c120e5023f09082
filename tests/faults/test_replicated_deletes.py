"""A plain Redis primary with a replica: a delete counts only once WAIT says the replica holds it.

Its own primary and replica (redis-server, ports 17030 and 17031, in a temporary directory), so
the replica can be frozen (SIGSTOP) without touching the stack's Redis.
"""
from __future__ import annotations

import os
import signal
import subprocess

import pytest
import redis

from citycache.write.deletes import invalidate
from citycache.write.deletes import Deleter, NotReplicated
from citycache.read.cities import key as cache_key
from citycache.rules import lease_key as lease_of
from tests.support import wait_until

PRIMARY_PORT, REPLICA_PORT = 17030, 17031


def redis_server(port: int, directory, *extra: str) -> subprocess.Popen:
    directory.mkdir()
    return subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(directory), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def primary_and_replica(tmp_path_factory):
    base = tmp_path_factory.mktemp("replicated")
    primary = redis_server(PRIMARY_PORT, base / "primary")
    replica = redis_server(REPLICA_PORT, base / "replica", "--replicaof", "127.0.0.1", str(PRIMARY_PORT))
    client = redis.Redis(port=PRIMARY_PORT, socket_timeout=5)
    try:
        def linked():
            try:
                return client.info("replication").get("connected_slaves") == 1 and redis.Redis(
                    port=REPLICA_PORT).info("replication").get("master_link_status") == "up"
            except redis.ConnectionError:
                return False

        wait_until(linked, timeout=30, message="the replica to sync with its primary", interval=0.1)
        yield client, replica
    finally:
        client.close()
        for proc in (replica, primary):
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=10)


def test_a_delete_waits_until_the_replica_holds_it(primary_and_replica):
    client, replica = primary_and_replica
    deleter = Deleter(client, replicas=1, timeout_ms=1000)
    client.set(cache_key("QQA"), b"stale"), client.set(lease_of(cache_key("QQA")), b"token")
    assert invalidate(client, [cache_key("QQA")], deleter) == 2

    client.set(cache_key("QQB"), b"stale")
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        with pytest.raises(NotReplicated):
            invalidate(client, [cache_key("QQB")], deleter)
        assert not client.exists(cache_key("QQB"))  # done on the primary, but it does not count yet
    finally:
        os.kill(replica.pid, signal.SIGCONT)

    def confirmed():  # the cleaner's retry: idempotent, and confirmed once the replica caught up
        try:
            return invalidate(client, [cache_key("QQB")], deleter) == 0
        except NotReplicated:
            return False

    wait_until(confirmed, timeout=30, message="the retried delete to be confirmed", interval=0.1)


def test_a_primary_without_replicas_has_nothing_to_wait_for(redis):
    """The stack's own Redis has no replica: the same deleter deletes at once."""
    redis.set(cache_key("QQC"), b"stale")
    assert invalidate(redis, [cache_key("QQC")], Deleter(redis, replicas=1, timeout_ms=300)) == 1
