"""The consistency sampler: compares cached keys of every resource with the database, all the time, at a
bounded rate (SAMPLER_RATE comparisons a second), and says how consistent the cache is right now.

After Meta's Polaris. A mismatch is compared again until it heals (late: an invalidation was on its way)
or SAMPLER_STALE_AFTER_SECONDS pass (stale: nothing will fix it; logged with its age and both values).
Keys Redis just said were written or deleted come first (a tracking connection in broadcast mode hears
every write and DEL of a rule's prefix, whoever made it): a stale set shows right after an invalidation.
The rest of the turns walk every cached key (citycache/read/sampling.py decides which key is next).

Its own program, not a thread of kafka_cleaner: it must keep measuring when the cleaner is stuck or
dead, which is when it matters, and must never slow the deletes down. It only reads: its Postgres
session is read-only, and in Redis it writes nothing but its own heartbeat key.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import time

import psycopg2
import redis

from citycache.read.consistency import Comparison, compare
from citycache.read.resources import RESOURCES, resource_of
from citycache.read.sampling import LATE, STALE, Schedule, Verdict
from citycache.read.topology import PLAIN_NODE
from citycache.read.tracking import TrackedNode
from citycache.rules import Rules, key_pattern
from citycache.runtime import metrics, timing
from citycache.runtime.backoff import Backoff
from citycache.runtime.clients import pg_connect, redis_client
from citycache.runtime.heartbeat import Heartbeat
from citycache.runtime.logs import configure_logging
from citycache.runtime.metrics import CONSISTENCY_SAMPLES, INCONSISTENCY_SECONDS, SAMPLE_RESULTS
from citycache.runtime.shutdown import Shutdown
from citycache.runtime.startup import checked_rules, refusing_bad_config
from citycache.settings import Settings, get_settings

WORKER = "consistency_sampler"
log = logging.getLogger(WORKER)

# Keys that are gone by the time they are looked at cost a GET and no query: a turn tries this many.
TRIES_PER_TURN = 20
# The longest one comparison's query may take (a read of the largest country is ~50 ms).
STATEMENT_TIMEOUT_MS = 5000
# A walk over a resource that found no cached key waits this long before the next SCAN pass.
EMPTY_PASS_PAUSE = 1.0


class KeyWalk:
    """Every cached key of every resource in turn: a SCAN pass per resource, the resources round-robin."""

    def __init__(self, client: redis.Redis, resources=RESOURCES) -> None:
        self.client, self.resources = client, resources
        self._passes: dict[str, object] = {}
        self._found: dict[str, bool] = {}
        self._resume_at = {resource.name: 0.0 for resource in resources}
        self._turn = 0

    def next(self) -> str | None:
        for _ in self.resources:
            resource = self.resources[self._turn % len(self.resources)]
            self._turn += 1
            key = self._next_of(resource)
            if key is not None:
                return key
        return None

    def _next_of(self, resource) -> str | None:
        name = resource.name
        for _ in range(2):  # the pass under way; once it ends, a new one at once if it found any key
            if name not in self._passes:
                if time.monotonic() < self._resume_at[name]:
                    return None
                self._passes[name] = self.client.scan_iter(match=key_pattern(resource.template.prefix), count=200)
                self._found[name] = False
            key = next(self._passes[name], None)
            if key is not None:
                self._found[name] = True
                return key.decode() if isinstance(key, bytes) else key
            del self._passes[name]
            if not self._found[name]:
                self._resume_at[name] = time.monotonic() + EMPTY_PASS_PAUSE
                return None
        return None


class ConsistencySampler:
    def __init__(self, settings: Settings, rules: Rules, shutdown: Shutdown) -> None:
        self.settings, self.rules, self.shutdown = settings, rules, shutdown
        self.interval = 1.0 / settings.sampler_rate
        self.schedule = Schedule(settings.sampler_stale_after_seconds)
        self.name = f"citycache-sampler-{socket.gethostname()}-{os.getpid()}"  # its connections in CLIENT LIST
        self.heartbeat = Heartbeat(redis_client(settings, timeout=1.0, name=self.name), WORKER)
        for resource in RESOURCES:  # every series exists from the start, so a first stale one is an increase
            for result in SAMPLE_RESULTS:
                CONSISTENCY_SAMPLES.labels(resource.name, result)
            INCONSISTENCY_SECONDS.labels(resource.name)

    def run(self) -> None:
        backoff = Backoff(base=0.5, cap=timing.RECONNECT_CAP_SECONDS)
        while not self.shutdown.requested:
            self.heartbeat.beat()
            try:
                self.session(backoff)
            except (psycopg2.Error, redis.RedisError, OSError) as exc:
                delay = backoff.next()
                log.warning("postgres or redis unavailable, retrying",
                            extra={"error": f"{type(exc).__name__}: {exc}".strip()[:300], "retry_in_s": delay})
                self.shutdown.sleep(delay, every=timing.BEAT_SECONDS, tick=self.heartbeat.beat)
        self.heartbeat.stop()
        log.info("stopped")

    def session(self, backoff: Backoff) -> None:
        conn = pg_connect(self.settings, autocommit=True, application_name=WORKER)
        cache, pushes = redis_client(self.settings, name=self.name), None
        try:
            with conn.cursor() as cur:  # reads only: Postgres refuses any write in this session
                cur.execute("SET default_transaction_read_only = on")
                cur.execute("SET statement_timeout = %s", (STATEMENT_TIMEOUT_MS,))
            if self.settings.redis_cluster:  # a tracking connection hears one node only (as the near cache)
                log.info("not hearing changed keys: REDIS_CLUSTER is set; walking every key only")
            else:
                pushes = TrackedNode(self.settings.redis_url, PLAIN_NODE, self.rules.tracking_prefixes, name=self.name)
            log.info("sampling", extra={"rate_per_s": self.settings.sampler_rate,
                                        "stale_after_s": self.settings.sampler_stale_after_seconds,
                                        "resources": [r.name for r in RESOURCES], "hearing_changes": bool(pushes)})
            backoff.reset()
            self.serve(conn, cache, pushes, KeyWalk(cache))
        finally:
            conn.close()
            cache.close()
            if pushes is not None:
                pushes.close()

    def serve(self, conn, cache: redis.Redis, pushes: TrackedNode | None, walk: KeyWalk) -> None:
        next_turn = time.monotonic()
        while not self.shutdown.requested:
            self.heartbeat.beat()
            if time.monotonic() >= next_turn:
                self.turn(conn, cache, walk)
                # A slow turn is not made up for with a burst: the rate is a ceiling.
                next_turn = max(next_turn + self.interval, time.monotonic())
            # Sliced, so that a SIGTERM (which only sets the flag) is seen within half a second.
            wait = min(max(0.0, next_turn - time.monotonic()), 0.5)
            if pushes is None:
                self.shutdown.sleep(wait)
                continue
            for keys in pushes.poll(wait):
                if keys is not None:  # None: the whole database was flushed, nothing left to compare
                    self.schedule.heard([k for k in keys if resource_of(k) is not None], time.monotonic())

    def turn(self, conn, cache: redis.Redis, walk: KeyWalk) -> None:
        """At most one comparison with the database: keys found gone cost a GET each, a few per turn."""
        for _ in range(TRIES_PER_TURN):
            key = self.schedule.next(time.monotonic(), walk.next)
            if key is None:
                return
            resource = resource_of(key)
            if resource is None:
                continue
            found = compare(cache, conn, resource, key)
            value = None if found is None else hashlib.blake2b(found.value, digest_size=16).digest()
            verdict = self.schedule.seen(key, None if found is None else found.agrees, time.monotonic(), value)
            self.record(resource.name, key, found, verdict, cache)
            if found is not None:
                return

    def record(self, resource: str, key: str, found: Comparison | None, verdict: Verdict, cache: redis.Redis) -> None:
        if verdict.result is not None:
            CONSISTENCY_SAMPLES.labels(resource, verdict.result).inc()
        if verdict.lifetime is not None:
            INCONSISTENCY_SECONDS.labels(resource).observe(verdict.lifetime)
        if verdict.new_mismatch:
            log.info("mismatch seen, following it", extra={"resource": resource, "key": key})
        elif verdict.result == LATE:
            log.info("late value healed", extra={"resource": resource, "key": key,
                                                 "inconsistent_for_s": round(verdict.lifetime, 3)})
        elif verdict.result == STALE:
            ttl = self.settings.cache_ttl_seconds
            left = cache.ttl(key)
            # Stored by the API, a value has lived the TTL it was given less what is left of it.
            cached_for = ttl - left if 0 <= left <= ttl else None
            log.warning("stale value", extra={"resource": resource, "key": key, "ttl_s": left,
                                              "inconsistent_for_s": round(verdict.lifetime, 3),
                                              "cached_for_s": cached_for, **found.difference()})


@refusing_bad_config
def main() -> None:
    settings = get_settings()
    configure_logging(WORKER, settings.log_level)
    metrics.setup(settings)
    rules = checked_rules(settings)
    for resource in RESOURCES:  # the keys it compares must be some rule's, as the API's are
        resource.check(rules)
    ConsistencySampler(settings, rules, Shutdown().install()).run()


if __name__ == "__main__":
    main()
