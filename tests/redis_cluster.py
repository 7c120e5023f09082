"""Changes to the test topology's Redis Cluster (ops/cluster.py) as an operator makes them: a slot moved
to another primary (CLUSTER SETSLOT and MIGRATE, the steps `redis-cli --cluster reshard` takes), a new
primary that joins and leaves, a killer of the API's tracking connections on one node."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading

import redis

from ops import cluster as topo
from tests.api_answers import tracking_clients
from tests.support import Background, wait_until

HOST = "127.0.0.1"


def node(port: int) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, socket_timeout=5)


def node_id(port: int) -> str:
    with node(port) as client:
        return client.execute_command("CLUSTER MYID").decode()


def primaries() -> list[int]:
    """The ports of the primaries (with slots or not) as the first live node sees them."""
    for port in (*topo.REDIS_PORTS, topo.SPARE_REDIS_PORT):
        try:
            with node(port) as client:
                nodes = client.execute_command("CLUSTER NODES")
        except redis.RedisError:
            continue
        return sorted(int(address.rsplit(":", 1)[1]) for address, n in nodes.items()
                      if "master" in n["flags"] and "fail" not in n["flags"])
    raise LookupError("no node of the cluster answers")


def move_slot(slot: int, source: int, target: int) -> None:
    """Move `slot` with its keys from the primary on port `source` to the one on `target`."""
    source_id, target_id = node_id(source), node_id(target)
    with node(source) as src, node(target) as dst:
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", HOST, target, "", 0, 5000, "REPLACE", "KEYS", *keys)
        # The target first, so that it serves the slot before anyone is sent to it.
        for port in [target, source, *(p for p in primaries() if p not in (source, target))]:
            with node(port) as client:
                try:
                    client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
                except redis.ResponseError as exc:
                    # A source that gave its last slot away has already made itself the target's replica.
                    if port != source or "only with masters" not in str(exc):
                        raise
    wait_until(lambda: all(_owner(port, slot) == target_id for port in primaries()), timeout=10,
               message=f"every primary to agree that slot {slot} moved")


def _owner(port: int, slot: int) -> str | None:
    with node(port) as client:
        for start, end, *holders in client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return holders[0][2].decode()
    return None


@contextlib.contextmanager
def spare_primary():
    """A new, empty primary on SPARE_REDIS_PORT that joins the cluster (CLUSTER MEET) and is forgotten
    and stopped afterwards; the caller moves whatever slots it gave it back first."""
    port, data = topo.SPARE_REDIS_PORT, topo.STATE / "redis" / str(topo.SPARE_REDIS_PORT)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
         "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
         "--cluster-port", str(port + 50), "--dir", str(data), "--logfile", str(data / "redis.log")])
    spare_id = None
    try:
        wait_until(lambda: _answers(port), message="the spare Redis node to start")
        spare_id = node_id(port)
        first = topo.REDIS_PORTS[0]
        with node(port) as client:
            client.execute_command("CLUSTER MEET", HOST, first, first + 50)
        others = [p for p in topo.REDIS_PORTS if _answers(p)]
        wait_until(lambda: all(_knows(p, spare_id) for p in others) and all(_knows(port, node_id(p)) for p in others)
                   and _state_ok(port), timeout=15, message="the new primary and every node to know each other")
        yield port
    finally:
        for other in topo.REDIS_PORTS if spare_id else ():
            with contextlib.suppress(redis.RedisError), node(other) as client:
                client.execute_command("CLUSTER FORGET", spare_id)
        server.kill()
        server.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with node(port) as client:
            return client.ping()
    except redis.RedisError:
        return False


def _state_ok(port: int) -> bool:
    with node(port) as client:
        return client.cluster("INFO")["cluster_state"] == "ok"


def _knows(port: int, wanted: str) -> bool:
    with node(port) as client:
        nodes = client.execute_command("CLUSTER NODES")
    return any(n["node_id"] == wanted and "handshake" not in n["flags"] for n in nodes.values())


class TrackingKiller(Background):
    """CLIENT KILL of every API tracking connection on one node, and again each time one comes back."""

    def __init__(self, port: int):
        self.port, self.killed = port, 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._kill, daemon=True)]

    def _kill(self) -> None:
        with node(self.port) as client:
            while not self._stop.is_set():
                for client_id in tracking_clients(client).values():
                    with contextlib.suppress(redis.RedisError):
                        self.killed += client.client_kill_filter(_id=client_id)
                self._stop.wait(0.002)
