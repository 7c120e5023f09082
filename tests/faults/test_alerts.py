"""The alert rules of ops/prometheus/ evaluated by a real Prometheus that scrapes the running stack, against real faults.

One Prometheus for the module (its own port from TEST_PORTS, its own temporary storage, 2 s scrapes and 1 s rule
evaluations), loading the rules file and the example config as shipped. It scrapes the stack's API and two more
API processes of the test's own: one whose logical-mode slot setting names a slot of the test's, with a 1-byte
warning, and one that the test stops (an API machine gone).

The faults run side by side, in one window, so the suite waits out the alerts' 30 s `for` once: pg_listener,
kafka_cleaner and S3 stopped while writes go on and events keep arriving in Kafka, a replication slot nobody
reads, a stale value planted by hand (a SET that bypasses the lease), an API stopped. Then everything is put
back and each alert must resolve, and the invalidations that arrived late fire the commit->DEL alert. Every wait
polls Prometheus' HTTP API with a deadline.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest
import requests
import yaml
from kafka import KafkaProducer

from bench.common import free_port
from bench.hit_throughput import Server
from citycache import events
from citycache.read.cities import CITIES
from citycache.read.countries import COUNTRIES
from citycache.read.entry import Entry
from tests.burst import WriteBurst
from tests.support import ROOT, start_program, start_service, stop_program, stop_service, wait_until

pytestmark = pytest.mark.slow
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
SLOT = "citycache_alert_test"
# A country whose cached value the test replaces by hand: its capital, renamed in the cache only.
PLANTED = ("BGR", b'"capital":"Sofia"', b'"capital":"Plovdiv"')
# Each alert the window's faults must fire, with the labels that say which fault.
WINDOW = [("CityCacheWorkerDown", {"worker": "pg_listener"}), ("CityCacheWorkerDown", {"worker": "kafka_cleaner"}),
          ("CityCacheOutboxBacklogGrowing", {}), ("CityCacheConsumerLagGrowing", {}),
          ("CityCacheDependencyDown", {"dependency": "s3"}), ("CityCacheReplicationSlotWALRetained", {"slot": SLOT}),
          ("CityCacheStaleValue", {"resource": "countries"}), ("CityCacheMetricsUnreachable", {})]


class Prometheus:
    """A prometheus process of the test's own, and the parts of its HTTP API the test reads."""

    def __init__(self, tmp: Path, targets: list[str]) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.fail("prometheus is not installed (ops/install.sh installs Debian's package)")
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
        (job,) = config["scrape_configs"]
        job["scrape_timeout"] = "2s"
        job["static_configs"] = [{"targets": targets}]
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port('TEST_PORTS')}"
        self.log = tmp / "prometheus.log"
        self.process = subprocess.Popen(
            [exe, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, message=f"Prometheus ready at {self.url}", interval=0.2)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"prometheus exited: {self.log.read_text()[-2000:]}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def get(self, path: str, **params) -> dict:
        body = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self) -> list[dict]:
        return self.get("alerts")["alerts"]

    def matching(self, name: str, labels: dict) -> list[dict]:
        return [a for a in self.alerts() if a["labels"]["alertname"] == name
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def await_firing(self, name: str, labels: dict, timeout: float) -> dict:
        firing = wait_until(lambda: [a for a in self.matching(name, labels) if a["state"] == "firing"],
                            timeout=timeout, interval=0.5, message=f"{name} {labels} firing in Prometheus")
        return firing[0]

    def await_resolved(self, name: str, labels: dict, timeout: float) -> None:
        wait_until(lambda: not self.matching(name, labels), timeout=timeout, interval=0.5,
                   message=f"{name} {labels} resolved (neither pending nor firing)")

    def evaluations_after(self, seconds_from_now: float) -> None:
        """Return once every rule group has been evaluated after `seconds_from_now` from now."""
        since = float(self.get("query", query="time()")["result"][1]) + seconds_from_now

        def evaluated() -> bool:
            groups = self.get("rules")["groups"]
            return all(_epoch(group["lastEvaluation"]) > since for group in groups)

        wait_until(evaluated, timeout=seconds_from_now + 30, interval=0.5, message="the rules evaluated")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _epoch(stamp: str) -> float:
    """Prometheus' RFC 3339 timestamps (nanoseconds, Z) as seconds since the epoch."""
    from datetime import datetime

    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{fraction or 0}")


def api(tmp: Path, name: str, **env: str) -> Server:
    """An API process of the test's own (one gunicorn worker, its own metrics directory), started."""
    env = {"WEB_WORKERS": "1", "NEAR_CACHE_ENABLED": "false", "PROMETHEUS_MULTIPROC_DIR": str(tmp / name), **env}
    return Server(f"alerts-{name}", "web:create_app()", env, tmp / "unused", tmp, port=free_port("TEST_PORTS"))


@pytest.fixture(scope="module")
def apis(tmp_path_factory):
    """("slot", "doomed"): an API reporting the slot SLOT against a 1-byte warning, and one the test stops."""
    tmp = tmp_path_factory.mktemp("apis")
    servers = {"slot": api(tmp, "slot", REPLICATION_SLOT=SLOT, SLOT_WAL_WARNING_BYTES="1"), "doomed": api(tmp, "doomed")}
    for server in servers.values():
        server.wait_up()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def prometheus(settings, base_url, apis, tmp_path_factory):
    targets = [f"127.0.0.1:{settings.http_port}"] + [f"127.0.0.1:{server.port}" for server in apis.values()]
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), targets)
    yield server
    server.stop()


def together(*steps) -> None:
    """Run the steps at once (stopping S3 alone takes seconds); the first failure fails the test."""
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        for future in [pool.submit(step) for step in steps]:
            future.result()


class EventsArriving:
    """Invalidation events produced into Kafka every 0.1 s (as pg_listener would) while it runs."""

    def __init__(self, settings) -> None:
        self.producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        while not self._stop.wait(0.1):
            key = CITIES.key("QQF")
            self.producer.send(events.TOPIC, key=key.encode(), value=events.encode(events.Invalidation(key)))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.producer.flush(timeout=10)
        self.producer.close()


def test_a_healthy_stack_fires_nothing(prometheus):
    wait_until(lambda: len(prometheus.get("query", query='up{job="city-cache"} == 1')["result"]) == 3,
               timeout=30, interval=0.5, message="the three APIs scraped")
    prometheus.evaluations_after(4)  # a few scrapes and evaluations: rates and derivatives have points
    assert prometheus.alerts() == []


def test_each_fault_fires_its_alert_and_recovery_resolves_it(prometheus, settings, base_url, http, redis, db,
                                                              test_cities, apis, app_log):
    test_cities("QQE", *[(f"QQE-town-{i}", 1000 * i) for i in range(1, 4)])
    code, right, wrong = PLANTED
    planted_key = COUNTRIES.key(code)
    http.get(f"{base_url}/countries/{code}")
    value = wait_until(lambda: redis.get(planted_key), message=f"{planted_key} cached")
    stale = Entry(Entry.from_cached(value).data.replace(right, wrong))
    assert wrong in stale.data
    fired, recovered = {}, False
    try:
        with WriteBurst(settings.database_url, base_url, ["QQE"], write_interval=0.05) as burst, \
                EventsArriving(settings):
            together(lambda: stop_service("s3"), lambda: stop_program("pg_listener"),
                     lambda: stop_program("kafka_cleaner"), apis["doomed"].stop)
            # Each fault took effect (stop_program and stop_service assert theirs): the API is gone,
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{apis['doomed'].port}/metrics", timeout=2)
            with db.cursor() as cur:
                cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (SLOT,))
                cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
                assert cur.fetchall() == [(False,)], "a slot that nobody reads"
            redis.set(planted_key, stale.cached(), ex=settings.cache_ttl_seconds)  # bypasses the lease
            assert wrong in redis.get(planted_key), "the stale value in place"
            for name, labels in WINDOW:
                fired[(name, json.dumps(labels))] = prometheus.await_firing(name, labels, timeout=90)
            assert burst.committed > 0
        assert fired[("CityCacheMetricsUnreachable", "{}")]["labels"]["instance"] == f"127.0.0.1:{apis['doomed'].port}"
        stale_lines = [json.loads(line) for line in app_log().splitlines() if '"msg": "stale value"' in line]
        assert [line for line in stale_lines if line["key"] == planted_key and "Plovdiv" in line["cached"]
                and "Sofia" in line["database"] and line["inconsistent_for_s"] >= settings.sampler_stale_after_seconds], \
            stale_lines
        recover(settings, redis, planted_key)
        recovered = True
        for name, labels in WINDOW:
            # Stale values stay "in the last 10 minutes", by design; the stopped API is not started again.
            if name not in ("CityCacheStaleValue", "CityCacheMetricsUnreachable"):
                prometheus.await_resolved(name, labels, timeout=60)
        # The commits made while pg_listener was stopped reached Redis only after it started again.
        prometheus.await_firing("CityCacheCommitToDeleteSlow", {}, timeout=60)
    finally:
        if not recovered:
            recover(settings, redis, planted_key)
    summary = fired[("CityCacheWorkerDown", json.dumps({"worker": "pg_listener"}))]["annotations"]["summary"]
    assert summary.startswith("pg_listener has no heartbeat")


def recover(settings, redis, planted_key: str) -> None:
    """Put back everything the window took away (but the stopped API)."""
    redis.delete(planted_key)
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                        (SLOT,))
    finally:
        conn.close()
    together(lambda: start_service("s3"), lambda: start_program("pg_listener"), lambda: start_program("kafka_cleaner"))
