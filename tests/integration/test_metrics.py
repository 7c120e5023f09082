"""GET /metrics: Prometheus text with the samples of every gunicorn worker and both workers."""
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from citycache import events
from citycache.runtime.heartbeat import TTL_SECONDS
from citycache.read.cities import key as cache_key
from citycache.read.countries import key as country_key
from citycache.write.dbnames import OUTBOX
from tests.support import start_program, stop_program, wait_until


def scrape(http, base_url) -> dict[tuple, float]:
    response = http.get(f"{base_url}/metrics", timeout=15)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("resource, path, key", [("cities", "/cities", cache_key), ("countries", "/countries", country_key)])
def test_requests_hits_misses_and_query_time_add_up_across_gunicorn_workers(base_url, http, redis, test_cities,
                                                                            test_countries, resource, path, key):
    test_cities("QQA", ("Alpha", 1))
    test_countries("QQA")
    redis.delete(key("QQA"))
    before = scrape(http, base_url)
    for _ in range(20):  # new connections, so both gunicorn processes serve some of them
        assert http.get(f"{base_url}{path}/QQA", headers={"Connection": "close"}).status_code == 200
    after = scrape(http, base_url)
    route = dict(method="GET", route=f"{path}/<code>", status="200")

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("citycache_http_requests_total", **route) == 20
    assert grew("citycache_cache_lookups_total", resource=resource, result="miss") == 1
    assert grew("citycache_cache_lookups_total", resource=resource, result="hit") == 19
    other = "countries" if resource == "cities" else "cities"
    assert grew("citycache_cache_lookups_total", resource=other, result="miss") == 0  # counted per resource
    assert value(after, "citycache_db_query_seconds_count") > value(before, "citycache_db_query_seconds_count")
    assert value(after, "citycache_http_request_duration_seconds_count", route=f"{path}/<code>") >= 20


def test_unknown_paths_are_one_series_not_one_per_path(base_url, http):
    http.get(f"{base_url}/no/such/path-1")
    http.get(f"{base_url}/no/such/path-2")
    samples = scrape(http, base_url)
    assert value(samples, "citycache_http_requests_total", method="GET", route="unmatched", status="404") >= 2
    assert not [key for key in samples if "path-1" in str(key)]


def test_workers_count_published_and_applied_invalidations_and_their_latency(base_url, http, db, test_cities):
    test_cities("QQB", ("Beta", 1))
    before = scrape(http, base_url)
    with db.cursor() as cur:
        cur.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQB'")

    def moved():
        now = scrape(http, base_url)
        return now if all(value(now, name) > value(before, name) for name in (
            "citycache_invalidations_published_total", "citycache_invalidations_applied_total",
            "citycache_commit_to_delete_seconds_count")) else None

    after = wait_until(moved, timeout=15, message="the workers' counters to move", interval=0.2)
    assert value(after, "citycache_commit_to_delete_seconds_sum") > value(before, "citycache_commit_to_delete_seconds_sum")


def test_bad_events_skipped_are_counted(base_url, http, settings):
    before = value(scrape(http, base_url), "citycache_bad_events_skipped_total", source="kafka")
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    try:
        producer.send(events.TOPIC, key=b"QQC", value=b"not json")
        producer.flush(timeout=10)
    finally:
        producer.close()
    wait_until(lambda: value(scrape(http, base_url), "citycache_bad_events_skipped_total", source="kafka") > before,
               timeout=15, message="the bad event to be counted", interval=0.2)


def test_pipeline_gauges_show_the_backlog_and_the_beats(base_url, http, db, test_cities):
    """With pg_listener stopped, a write waits in the outbox, and the gauge counts exactly those rows."""
    test_cities("QQD", ("Delta", 1))
    stop_program("pg_listener")
    try:
        with db.cursor() as cur:
            cur.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQD'")
            cur.execute(f"SELECT count(*) FROM {OUTBOX}")
            (waiting,) = cur.fetchone()
        samples = scrape(http, base_url)
        assert waiting >= 1 and samples[("citycache_outbox_backlog", ())] == waiting
        assert ("citycache_consumer_lag", ()) in samples
        assert samples.get(("citycache_worker_heartbeat_age_seconds", (("worker", "kafka_cleaner"),))) < TTL_SECONDS
        # A clean stop deletes the listener's beat: its series is absent, not stale.
        assert ("citycache_worker_heartbeat_age_seconds", (("worker", "pg_listener"),)) not in samples
    finally:
        start_program("pg_listener")
    wait_until(lambda: scrape(http, base_url).get(("citycache_outbox_backlog", ())) == 0, timeout=15,
               message="the backlog gauge to fall to 0 once pg_listener drained the outbox", interval=0.2)


def test_gunicorn_start_drops_dead_processes_files_and_keeps_the_workers(base_url, http, settings):
    from pathlib import Path

    from tests.support import ROOT, supervisorctl

    directory = Path(settings.prometheus_multiproc_dir)
    directory = directory if directory.is_absolute() else ROOT / directory
    dead = directory / "counter_4194303.db"  # above any pid this machine hands out (pid_max)
    dead.write_bytes(b"")
    worker_pid = supervisorctl("pid", "kafka_cleaner").stdout.strip()
    worker_files = sorted(p.name for p in directory.glob(f"*_{worker_pid}.db"))
    assert worker_files, "kafka_cleaner writes its samples to the shared directory"
    assert supervisorctl("restart", "web").returncode == 0
    wait_until(lambda: _answers(f"{base_url}/health/live"), timeout=30, message="web to answer after the restart",
               interval=0.2)
    assert not dead.exists()
    assert sorted(p.name for p in directory.glob(f"*_{worker_pid}.db")) == worker_files


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:  # refused or slow while gunicorn restarts: not yet
        return False
