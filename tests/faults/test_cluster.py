"""Beyond one machine: a 3-broker Kafka, a Redis Cluster with replicas, static-member cleaners and a
fan-out to a second cache, each node killed during a write burst, then the checker on both caches;
and the API's near cache on the cluster through a primary's kill, a slot moved to a new primary and
back, its tracking connection killed on one node, and a city moving between countries on two nodes.

The topology (ops/cluster.py, ports 17000-17999) starts once for this module and stops
after it. Times to consistency go into the run's fault-time table like the single-node faults.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
import requests
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from redis.cluster import key_slot

from citycache.runtime.clients import pg_connect, redis_client
from citycache.read.consistency import find_mismatches
from citycache.read.resources import RESOURCES
from citycache.events import TOPIC
from citycache.read.cities import key as cache_key
from citycache.rules import lease_key as lease_of
from citycache.pipeline import KafkaAdmin, consumer_lag, outbox_backlog
from ops import cluster as topo
from tests.api_answers import near_metric, stale_answers, warm
from tests.burst import WriteBurst
from tests.redis_cluster import TrackingKiller, move_slot, spare_primary
from tests.support import ROOT, wait_until

pytestmark = pytest.mark.slow
CODES = ["QQA", "QQB", "QQC", "QQF"]  # one on each of the 3 partitions (see test_faults.py)
MAIN, FANOUT = topo.settings(), topo.settings(**topo.FANOUT)
API, FANOUT_API = f"http://127.0.0.1:{topo.HTTP_PORT}", f"http://127.0.0.1:{topo.FANOUT_HTTP_PORT}"
ADMIN = KafkaAdmin(MAIN)  # both groups live on the same brokers; reconnects after a failure


def lag(settings) -> int:
    return sum(consumer_lag(ADMIN, settings.kafka_consumer_group).values())


@pytest.fixture(scope="module")
def cluster():
    stack = topo.ClusterStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def db():
    conn = psycopg2.connect(MAIN.database_url)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def seeded(cluster, db):
    """Three cities under each test code in the cluster's database, removed afterwards."""
    with db.cursor() as cur:
        cur.execute("DELETE FROM city WHERE countrycode = ANY(%s)", (CODES,))
        cur.execute("INSERT INTO city (name, countrycode, district, population)"
                    " SELECT c || '-town-' || i, c, 'Test', 1000 * i FROM unnest(%s::text[]) c, generate_series(1, 3) i",
                    (CODES,))
    wait_until(quiet, timeout=60, message="the seed's invalidations", interval=0.05)
    yield
    with db.cursor() as cur:
        cur.execute("DELETE FROM city WHERE countrycode = ANY(%s)", (CODES,))
    wait_until(quiet, timeout=60, message="the cleanup's invalidations", interval=0.1)


# --- helpers ----------------------------------------------------------------------------------------

def quiet() -> bool:
    """Outbox drained and both consumer groups caught up."""
    try:
        conn = pg_connect(MAIN, autocommit=True)
        try:
            backlog = outbox_backlog(conn)
        finally:
            conn.close()
        return backlog == 0 and lag(MAIN) == 0 and lag(FANOUT) == 0
    except Exception:  # a node still coming back: not quiet yet
        return False


def mismatches(settings) -> list:
    client, conn = redis_client(settings), pg_connect(settings, autocommit=True)
    try:
        found, _checked = find_mismatches(client, conn, RESOURCES)
        return found
    finally:
        conn.close()
        client.close()


def assert_consistent(scenario: str, since, fault_times: dict) -> None:
    """Await quiescence, then neither cache may hold a value the database disagrees with. `since` is
    a moment (monotonic) or a burst's (fault, end): the time is recorded from each."""
    wait_until(quiet, timeout=90, message=f"{scenario}: outbox and both groups' lag to drain", interval=0.05)
    main, fanout = mismatches(MAIN), mismatches(FANOUT)
    now = time.monotonic()
    if isinstance(since, tuple):
        fault_times[f"cluster: {scenario} (from the fault)"] = round(now - since[0], 2)
        fault_times[f"cluster: {scenario} (from the burst's end)"] = round(now - since[1], 2)
    else:
        fault_times[f"cluster: {scenario}"] = round(now - since, 2)
    assert not main, "\n".join(m.describe() for m in main)
    assert not fanout, "second cache:\n" + "\n".join(m.describe() for m in fanout)


class Readers:
    """Keep both APIs' caches filled with the test countries while the burst writes."""

    def __init__(self, urls):
        self.urls, self.reads = urls, 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, args=(url,), daemon=True) for url in urls]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _read(self, url):
        with requests.Session() as http:
            while not self._stop.is_set():
                try:
                    http.get(f"{url}/cities/{random.choice(CODES)}", timeout=5)
                    self.reads += 1
                except requests.RequestException:
                    pass


def burst_with_fault(fault, *, writes_after: int = 60) -> tuple[float, float]:
    """Writes and reads on both caches, the fault, more writes; returns when the fault happened and
    when the burst ended. The burst ends during the fault, so a later write cannot paper over a lost
    invalidation."""
    with WriteBurst(MAIN.database_url, API, CODES) as burst, Readers([FANOUT_API]) as fanout:
        burst.await_writes(40)
        at = time.monotonic()
        fault()
        burst.await_writes(writes_after)
    assert burst.reads > 0 and fanout.reads > 0
    return at, time.monotonic()


def cluster_nodes(port: int = topo.REDIS_PORTS[0]) -> dict:
    import redis

    with redis.Redis(port=port, socket_timeout=2) as node:
        return node.execute_command("CLUSTER NODES")


def primary_port_of(key: str, nodes: dict) -> int:
    slot = key_slot(key.encode())
    for address, node in nodes.items():
        if "master" in node["flags"] and not {"fail", "fail?"} & set(node["flags"].split(",")) and any(
                int(lo) <= slot <= int(hi) for lo, hi in (r if len(r) == 2 else (r[0], r[0]) for r in node["slots"])):
            return int(address.rsplit(":", 1)[1])
    raise LookupError(f"no live primary serves slot {slot}")


def replica_port_of(primary_port: int, nodes: dict) -> int:
    primary_id = nodes[f"127.0.0.1:{primary_port}"]["node_id"]
    return next(int(address.rsplit(":", 1)[1]) for address, node in nodes.items()
                if node["master_id"] == primary_id and "fail" not in node["flags"])


# --- the topology -------------------------------------------------------------------------------------

def test_the_lease_shares_its_value_s_slot():
    for code in ("BGR", "USA", "QQA", "ZZZ"):
        assert key_slot(lease_of(cache_key(code)).encode()) == key_slot(cache_key(code).encode())
    assert cache_key("BGR") == "cities_BGR"


def test_topology_three_primaries_with_a_replica_each_and_a_topic_on_three_brokers(cluster):
    nodes = cluster_nodes()
    primaries = [n for n in nodes.values() if "master" in n["flags"]]
    replicas = [n for n in nodes.values() if "slave" in n["flags"]]
    assert len(primaries) == 3 and len(replicas) == 3
    assert {r["master_id"] for r in replicas} == {p["node_id"] for p in primaries}

    admin = KafkaAdminClient(bootstrap_servers=MAIN.kafka_bootstrap_servers.split(","))
    try:
        assert len(admin.describe_cluster()["brokers"]) == 3
        (topic,) = admin.describe_topics([TOPIC])
        assert {len(p["replica_nodes"]) for p in topic["partitions"]} == {3}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
        assert configs["topic"][TOPIC]["min.insync.replicas"]["value"] == "2"
    finally:
        admin.close()


def test_a_write_invalidates_both_caches_and_the_page_and_cli_work_on_the_cluster(cluster, seeded, db):
    for url in (API, FANOUT_API):
        assert requests.get(f"{url}/cities/QQA", timeout=5).json()["source"] == "db"
        assert requests.get(f"{url}/cities/QQA", timeout=5).json()["source"] == "cache"
    with db.cursor() as cur:
        cur.execute("UPDATE city SET population = 777 WHERE name = 'QQA-town-1'")
    main, second = redis_client(MAIN), redis_client(FANOUT)
    wait_until(lambda: not main.exists(cache_key("QQA")) and not second.exists(cache_key("QQA")),
               message="the invalidation of cities_QQA in both caches")
    for url in (API, FANOUT_API):
        body = requests.get(f"{url}/cities/QQA", timeout=5).json()
        assert body["source"] == "db" and {"name": "QQA-town-1", "population": 777} in body["data"]

    page = requests.get(f"{API}/?country=QQA", timeout=5)
    assert page.status_code == 200 and "QQA-town-1" in page.text
    health = requests.get(f"{API}/health", timeout=10).json()
    assert health["status"] == "up", health

    env = {**os.environ, **topo.environment()}
    for args in (["check"], ["status"], ["invalidate", "QQA", "--direct"]):
        result = subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    assert not main.exists(cache_key("QQA"))


# --- Redis --------------------------------------------------------------------------------------------

def test_a_delete_is_not_committed_until_a_replica_holds_it(cluster, seeded, db):
    """The replica of the primary that holds cities_QQB is frozen (SIGSTOP): the DEL is done on the
    primary, but the offset must not be committed while no replica has it."""
    nodes = cluster_nodes()
    primary = primary_port_of(cache_key("QQB"), nodes)
    replica_pid = cluster.redis_pid(replica_port_of(primary, nodes))
    assert requests.get(f"{API}/cities/QQB", timeout=5).json()["source"] == "db"
    import redis

    on_primary = redis.Redis(port=primary)
    assert on_primary.exists(cache_key("QQB"))
    os.kill(replica_pid, signal.SIGSTOP)
    try:
        with db.cursor() as cur:
            cur.execute("UPDATE city SET population = 4242 WHERE name = 'QQB-town-2'")
        wait_until(lambda: not on_primary.exists(cache_key("QQB")), message="the DEL on the primary")
        # Observed for a second and a half: the DEL is done, yet the group still has it to do.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert lag(MAIN) > 0, "offset committed before any replica had the DEL"
            time.sleep(0.1)
    finally:
        os.kill(replica_pid, signal.SIGCONT)
    wait_until(quiet, timeout=30, message="the offset committed once the replica has the DEL")


def test_kill_a_redis_primary_during_invalidations(cluster, seeded, db, fault_times):
    nodes = cluster_nodes()
    victim = primary_port_of(cache_key("QQA"), nodes)
    survivor = next(port for port in topo.REDIS_PORTS if port != victim)
    at = burst_with_fault(lambda: os.kill(cluster.redis_pid(victim), signal.SIGKILL))

    def failed_over():
        try:
            return primary_port_of(cache_key("QQA"), cluster_nodes(survivor)) != victim
        except Exception:
            return False

    wait_until(failed_over, timeout=30, message="the replica to take over the primary's slots", interval=0.05)
    fault_times["cluster: Redis primary kill -9, to failover"] = round(time.monotonic() - at[0], 2)
    assert_consistent("Redis primary kill -9", at, fault_times)
    assert_api_fresh(db, CODES)
    for code in CODES:  # after the failover: the pushes of these come from the promoted replica
        write(db, code)
    wait_until(quiet, timeout=60, message="the writes after the failover", interval=0.05)
    assert_api_fresh(db, CODES)
    cli_check()
    cluster.run_services(cluster.services("start", "redis"))  # the old primary rejoins as a replica
    wait_until(lambda: len([n for n in cluster_nodes().values() if "slave" in n["flags"]
                            and "fail" not in n["flags"]]) == 3, timeout=30, message="the old primary to rejoin")


# --- the near cache on the cluster ------------------------------------------------------------------

def near_serves(http) -> bool:
    """The API's near cache answers hits again (tracking is on at every primary)."""
    before = near_metric(http, API, "citycache_near_cache_lookups_total", result="hit")
    for _ in range(3):
        http.get(f"{API}/cities/{CODES[0]}", timeout=10)
    return near_metric(http, API, "citycache_near_cache_lookups_total", result="hit") > before


def assert_api_fresh(db, codes) -> None:
    """Once the pipeline is quiet, every answer of the API agrees with the database: awaited briefly
    (a push takes a moment), then 20 answers per code, served from the near cache, with 0 stale."""
    with requests.Session() as http:
        wait_until(lambda: near_serves(http), timeout=30, message="the near cache to serve hits again")
        wait_until(lambda: not stale_answers(http, API, db, codes, n=2), timeout=10,
                   message="the API's answers to agree with the database (a stale near copy?)")
        hits = near_metric(http, API, "citycache_near_cache_lookups_total", result="hit")
        stale = stale_answers(http, API, db, codes)
        assert not stale, "\n".join(stale)
        assert near_metric(http, API, "citycache_near_cache_lookups_total", result="hit") > hits


def cli_check() -> None:
    """`bin/cli check` with the topology's settings: every cached key agrees with the database."""
    result = subprocess.run([sys.executable, "-m", "ops.cli", "check"], cwd=ROOT,
                            env={**os.environ, **topo.environment()}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def write(db, code: str) -> None:
    with db.cursor() as cur:
        cur.execute("UPDATE city SET population = population + 1 WHERE countrycode = %s", (code,))


def test_a_tracking_connection_killed_on_one_node_empties_the_near_cache(cluster, seeded, db):
    """CLIENT KILL of the API's tracking connection on the node of one code's key, again each time it
    comes back until a write's DEL has gone by there: the push of that DEL reached nobody, so only an
    emptied near cache answers fresh afterwards."""
    code = CODES[0]
    port = primary_port_of(cache_key(code), cluster_nodes())
    with requests.Session() as http, Readers([API]):
        warm(http, API, code)
        lost = near_metric(http, API, "citycache_near_cache_lost_total")
        with TrackingKiller(port) as killer:
            wait_until(lambda: killer.killed, message="the tracking connection to be killed")
            write(db, code)
            wait_until(quiet, timeout=60, message="the write's DEL", interval=0.05)
        assert near_metric(http, API, "citycache_near_cache_lost_total") > lost
        assert_api_fresh(db, [code])
    cli_check()


def test_a_city_moving_between_countries_whose_keys_live_on_two_nodes(cluster, seeded, db):
    nodes = cluster_nodes()
    by_node = {}
    for code in CODES:
        by_node.setdefault(primary_port_of(cache_key(code), nodes), code)
    assert len(by_node) >= 2, "the test codes' keys must span two primaries"
    source, target = list(by_node.values())[:2]
    with requests.Session() as http, Readers([API]):
        warm(http, API, source, target)
        with db.cursor() as cur:
            cur.execute("UPDATE city SET countrycode = %s WHERE name = %s", (target, f"{source}-town-1"))
            assert cur.rowcount == 1, "the city to move"
        wait_until(quiet, timeout=60, message="the move's two DELs", interval=0.05)
        assert_api_fresh(db, [source, target])
    cli_check()


def test_a_slot_moved_to_a_new_primary_and_back(cluster, seeded, db):
    """A primary joins and takes the slot of a cached key with it (as `redis-cli --cluster reshard`
    moves one), then gives it back: the API must track the newcomer before it keeps what it serves."""
    code = CODES[0]
    key = cache_key(code)
    slot, home = key_slot(key.encode()), primary_port_of(key, cluster_nodes())
    with requests.Session() as http, Readers([API]):
        warm(http, API, code)
        with spare_primary() as spare:
            try:
                for source, target in ((home, spare), (spare, home)):
                    move_slot(slot, source, target)
                    assert primary_port_of(key, cluster_nodes()) == target
                    # Served again (and so filled from the slot's new node) before the write.
                    wait_until(lambda: near_serves(http), timeout=30, message="the near cache to serve hits")
                    write(db, code)
                    wait_until(quiet, timeout=60, message="the write's DEL", interval=0.05)
                    assert_api_fresh(db, [code])
            finally:
                if primary_port_of(key, cluster_nodes()) != home:
                    move_slot(slot, spare, home)
    cli_check()


# --- cleaners -----------------------------------------------------------------------------------------

def describe(group: str) -> dict:
    admin = KafkaAdminClient(bootstrap_servers=MAIN.kafka_bootstrap_servers.split(","))
    try:
        return admin.describe_groups([group])[group]
    finally:
        admin.close()


def group_members(group: str) -> int:
    """Members of the group once it is stable (0 while it rebalances)."""
    description = describe(group)
    return len(description["members"]) if description["group_state"] == "Stable" else 0


def instance_ids(group: str) -> set:
    description = describe(group)
    if description["group_state"] != "Stable":
        return set()
    return {member["group_instance_id"] for member in description["members"]}


def test_a_killed_static_cleaner_restarted_rejoins_as_the_same_member(cluster, seeded, fault_times):
    """Static membership: a cleaner killed and started again (as supervisord does) rejoins under its
    group.instance.id, which the broker holds for it, and the caches are consistent after it.

    (What this does and does not save, measured: docs/multi-node.md. The broker still rebalances
    when the restarted member is the group's leader: kafka-python does not act on KIP-814.)"""
    wait_until(lambda: group_members("kafka_cleaner") == 2, timeout=30, message="both cleaners in the group")

    def kill_and_restart():
        killed = cluster.procs["cleaner-1"]
        cluster.kill_program("cleaner-1")
        assert killed.returncode == -signal.SIGKILL, "cleaner-1 was not running to be killed"
        cluster.start_program("cleaner-1")

    at = burst_with_fault(kill_and_restart)
    assert_consistent("kill -9 one of two static cleaners, restarted at once", at, fault_times)
    wait_until(lambda: instance_ids("kafka_cleaner") == {"cleaner-1", "cleaner-2"}, timeout=30,
               message="the group's members to be the two static cleaners")


def test_two_cleaners_one_killed_and_gone(cluster, seeded, fault_times):
    """The dead member's partitions move to the other after the session timeout."""
    wait_until(lambda: group_members("kafka_cleaner") == 2, timeout=30, message="both cleaners in the group")
    try:
        killed = cluster.procs["cleaner-2"]
        at = burst_with_fault(lambda: cluster.kill_program("cleaner-2"))
        assert killed.returncode == -signal.SIGKILL, "cleaner-2 was not running to be killed"
        assert_consistent(f"two cleaners, one kill -9 and gone (session {topo.SESSION_TIMEOUT_MS} ms)", at,
                          fault_times)
    finally:
        cluster.start_program("cleaner-2")


# --- fan-out ------------------------------------------------------------------------------------------

def test_each_cache_is_checked_on_its_own_and_the_second_catches_up(cluster, seeded, db, fault_times):
    """The second group keeps its own offsets: with its cleaner stopped the second cache is stale
    (and its checker says so) while the first is not; started again, it converges."""
    for url in (API, FANOUT_API):
        assert requests.get(f"{url}/cities/QQC", timeout=5).json()["source"] == "db"
    cluster.stop_program("fanout-cleaner")
    try:
        with db.cursor() as cur:
            cur.execute("UPDATE city SET population = 31337 WHERE name = 'QQC-town-3'")
        wait_until(lambda: not redis_client(MAIN).exists(cache_key("QQC")), message="the first cache's DEL")
        assert not mismatches(MAIN)
        assert [m.key for m in mismatches(FANOUT)] == [cache_key("QQC")]
    finally:
        started = time.monotonic()
        cluster.start_program("fanout-cleaner")
    assert_consistent("second cache's cleaner stopped, then started", started, fault_times)


# --- Kafka --------------------------------------------------------------------------------------------

def test_kill_the_active_kafka_controller_during_a_burst(cluster, seeded, fault_times):
    controller = cluster.active_controller()
    at = burst_with_fault(lambda: os.kill(cluster.kafka_pid(controller), signal.SIGKILL))
    assert_consistent(f"Kafka broker {controller} (active controller) kill -9, two brokers left", at, fault_times)
    assert cluster.active_controller() != controller
    # Last in the module, so the topology's stop takes the other two down; a restarted broker would
    # cost the suite another JVM start for nothing more to check.
