"""Which Redis nodes a near cache must hear from: the one Redis, or every primary of a Redis Cluster.

Tracking is per node: a node pushes the invalidations of the keys it holds, nobody else's. On a
cluster the listener (citycache/read/tracking.py) therefore turns tracking on at every primary of a
view of the cluster (CLUSTER NODES), and keeps watching that view: whatever changes in it (a
failover, a node that joins or leaves, a slot that moves, a node marked failed) counts as lost
contact, so the near cache is emptied and bypassed until tracking is on again at every primary of
the new view. The view is compared whole: when in doubt, empty.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis


class TopologyChanged(redis.ConnectionError):
    """The nodes to track are no longer the ones tracking was turned on at (or cannot be told)."""


@dataclass(frozen=True, order=True)
class Node:
    address: str  # host:port to connect to ("" for the plain Redis of the URL)
    node_id: str = ""  # the cluster's name for it ("" for a plain Redis)
    primary: bool = True
    primary_id: str = ""  # a replica's primary
    failed: bool = False  # marked failed by the cluster (a majority agreed), not merely suspected
    slots: tuple[str, ...] = ()  # "0-5460", "13359", ...


@dataclass(frozen=True)
class View:
    nodes: frozenset[Node]

    def to_track(self) -> list[Node]:
        """The primaries tracking must be on at: every live primary, also one without slots (it may be
        importing keys). Refused while a failed primary still owns slots: until its replica takes over,
        nobody can be told to push for them."""
        orphaned = [n.address for n in self.nodes if n.primary and n.failed and n.slots]
        if orphaned:
            raise TopologyChanged(f"failed primaries still own slots: {', '.join(sorted(orphaned))}")
        primaries = sorted(n for n in self.nodes if n.primary and not n.failed)
        if not primaries:
            raise TopologyChanged("no live primary to track")
        return primaries

    @property
    def addresses(self) -> list[str]:
        return sorted(n.address for n in self.nodes)


PLAIN_NODE = Node("")  # the one Redis of a URL that is not a cluster
PLAIN = View(frozenset({PLAIN_NODE}))


def parse_cluster_nodes(reply: bytes | str) -> View:
    """A view from CLUSTER NODES, without what differs between asking nodes or from second to second:
    `myself`, a suspicion (`fail?`), ping times, the link, a slot being migrated."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        node_id, address, flags, primary_id = fields[0], fields[1], set(fields[2].split(",")), fields[3]
        endpoint, _, hostname = address.partition(",")  # ip:port@bus[,hostname]
        host_port = endpoint.split("@", 1)[0]
        if hostname:  # announced names are what clients are meant to use
            host_port = f"{hostname}:{host_port.rsplit(':', 1)[1]}"
        nodes.append(Node(
            address=host_port, node_id=node_id, primary="master" in flags,
            primary_id="" if primary_id == "-" else primary_id,
            failed=bool(flags & {"fail", "noaddr", "handshake"}),
            slots=tuple(s for s in fields[8:] if not s.startswith("["))))
    if not nodes:
        raise TopologyChanged("CLUSTER NODES named no node")
    return View(frozenset(nodes))


def connection(url: str, address: str = "", *, timeout: float) -> redis.Connection:
    """A RESP2 connection with the URL's credentials and options, to `address` (host:port) if given."""
    pool = redis.ConnectionPool.from_url(url, protocol=2, socket_timeout=timeout, socket_connect_timeout=timeout)
    kwargs = dict(pool.connection_kwargs)
    if address:
        host, _, port = address.rpartition(":")
        kwargs.update(host=host, port=int(port))
    return pool.connection_class(**kwargs)


class ClusterTopology:
    """Reads the view from one node: while connected, the same one (so that two reads compare); else
    the one that answered last, the URL's, then any node of the last view."""

    def __init__(self, url: str, *, timeout: float):
        self.url, self.timeout = url, timeout
        self.seeds: list[str] = []
        self.address = ""
        self.conn: redis.Connection | None = None

    def read(self) -> View:
        if self.conn is not None:
            return self._ask(self.conn)
        errors = []
        for address in dict.fromkeys([self.address, "", *self.seeds]):
            conn = connection(self.url, address, timeout=self.timeout)
            try:
                conn.connect()
                view = self._ask(conn)
            except (redis.RedisError, OSError) as exc:
                conn.disconnect()
                errors.append(f"{address or 'REDIS_URL'}: {exc}")
                continue
            self.conn, self.address, self.seeds = conn, address, view.addresses
            return view
        raise TopologyChanged(f"no node answered CLUSTER NODES ({'; '.join(errors)})")

    @staticmethod
    def _ask(conn: redis.Connection) -> View:
        conn.send_command("CLUSTER", "NODES")
        return parse_cluster_nodes(conn.read_response())

    def close(self) -> None:
        """After each round of tracking: a question the watch left unanswered must not answer the next."""
        if self.conn is not None:
            self.conn.disconnect()
            self.conn = None


class TopologyWatch:
    """Asks for the view again every `every` seconds on the topology's connection, without blocking
    the listener's loop: the question is sent, and the answer read once the socket has it."""

    def __init__(self, topology: ClusterTopology, view: View, *, every: float, timeout: float):
        self.topology, self.view, self.every, self.timeout = topology, view, every, timeout
        self.asked_at: float | None = None
        self.next_at = 0.0

    def socket(self):
        conn = self.topology.conn
        return None if conn is None else conn._sock  # redis-py keeps the socket there; select() needs it

    def step(self, now: float) -> None:
        """Raises TopologyChanged when the view differs, or no answer came within `timeout`."""
        conn = self.topology.conn
        if conn is None:
            raise TopologyChanged("the topology connection is gone")
        if self.asked_at is None:
            if now >= self.next_at:
                conn.send_command("CLUSTER", "NODES")
                self.asked_at = now
            return
        if conn.can_read(timeout=0):
            view = parse_cluster_nodes(conn.read_response())
            if view != self.view:
                raise TopologyChanged("the cluster's topology changed")
            self.asked_at, self.next_at = None, now + self.every
        elif now - self.asked_at > self.timeout:
            raise TopologyChanged(f"no answer to CLUSTER NODES within {self.timeout} s")
