"""Deletes that survive a failover: DEL, then WAIT until a replica holds it; per node in a cluster.

A DEL a primary acknowledged is lost if the primary dies before its replicas have it: the promoted
replica serves the stale value until its TTL. So where the primary has connected replicas, the DEL
and a WAIT go down one connection (WAIT counts the writes of its own connection) and the delete
counts as done only when WAIT reports enough replicas. A primary without a connected replica has
nobody to wait for (Redis's min-replicas-to-write is the knob for refusing writes then).

In a Redis Cluster every group of keys (a value and its lease share one slot) goes to the primary
that owns the slot, in one pipeline per primary.

`invalidate` deletes cache keys with their leases; `wipe` every key and lease under some prefixes
(after a TRUNCATE), matched literally.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

import redis
from redis.cluster import RedisCluster

from citycache.rules import key_pattern, lease_key, lease_pattern


class NotReplicated(redis.RedisError):
    """WAIT timed out before enough replicas held the delete: it does not count as applied."""


# How long a primary's count of connected replicas is trusted before INFO is asked again.
REPLICAS_TTL_SECONDS = 1.0


class Deleter:
    def __init__(self, client, replicas: int = 0, timeout_ms: int = 1000) -> None:
        self.client = client
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self._known: dict[str, tuple[float, int]] = {}  # node name -> (checked at, connected replicas)

    def delete(self, groups: list[list[str]]) -> int:
        """DEL every group (keys of one slot); returns how many keys existed. Raises a RedisError
        (NotReplicated among them) when the deletes cannot be counted as applied."""
        groups = [group for group in groups if group]
        if not groups:
            return 0
        if isinstance(self.client, RedisCluster):
            return self._delete_cluster(groups)
        return self._delete_on(self.client, "primary", groups, one_command=True)

    def _delete_cluster(self, groups: list[list[str]]) -> int:
        by_node = defaultdict(list)
        try:
            for group in groups:
                by_node[self.client.get_node_from_key(group[0]).name].append(group)
            deleted = 0
            for name, node_groups in by_node.items():
                node = self.client.get_node(node_name=name)
                deleted += self._delete_on(self.client.get_redis_connection(node), name, node_groups)
            return deleted
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            # A primary died or a slot moved (failover, resharding): learn the new map, then let
            # the caller retry the whole batch (a DEL is idempotent).
            self.client.nodes_manager.initialize()
            raise

    def _delete_on(self, node: redis.Redis, name: str, groups: list[list[str]], one_command=False) -> int:
        wanted = min(self.replicas, self._connected_replicas(node, name)) if self.replicas else 0
        pipe = node.pipeline(transaction=False)
        if one_command:
            pipe.delete(*[key for group in groups for key in group])
        else:
            for group in groups:
                pipe.delete(*group)
        if wanted:
            pipe.wait(wanted, self.timeout_ms)
        replies = pipe.execute()
        if wanted and replies[-1] < wanted:
            self._known.pop(name, None)  # a replica may have gone: ask again next time
            raise NotReplicated(f"{name}: {replies[-1]} of {wanted} replicas acknowledged the delete "
                                f"within {self.timeout_ms} ms")
        return sum(replies[:-1] if wanted else replies)

    def _connected_replicas(self, node: redis.Redis, name: str) -> int:
        now = time.monotonic()
        checked_at, count = self._known.get(name, (0.0, 0))
        if now - checked_at > REPLICAS_TTL_SECONDS:
            count = int(node.info("replication").get("connected_slaves", 0))
            self._known[name] = (now, count)
        return count


def redis_deleter(settings, client) -> Deleter:
    """How the cleaner deletes: confirmed by REDIS_DELETE_REPLICAS replicas where there are any."""
    return Deleter(client, settings.redis_delete_replicas, settings.redis_wait_timeout_ms)


def invalidate(client: redis.Redis, keys: Iterable[str], deleter: Deleter | None = None) -> int:
    """Delete the values and the leases of `keys` (each pair in one slot, one DEL); returns how many
    keys existed. `deleter` decides how a delete counts as applied."""
    return (deleter or Deleter(client)).delete([[key, lease_key(key)] for key in keys])


def wipe(client: redis.Redis, prefixes: Iterable[str], deleter: Deleter | None = None, batch: int = 500) -> int:
    """Delete every key and lease under `prefixes` (after a TRUNCATE); in a cluster, on every primary."""
    deleter = deleter or Deleter(client)
    deleted = 0
    for prefix in prefixes:
        for pattern in (key_pattern(prefix), lease_pattern(prefix)):
            keys = []
            for key in client.scan_iter(match=pattern, count=batch):  # a RedisCluster scans every primary
                keys.append(key)
                if len(keys) >= batch:
                    deleted += deleter.delete([[key] for key in keys])
                    keys = []
            if keys:
                deleted += deleter.delete([[key] for key in keys])
    return deleted
