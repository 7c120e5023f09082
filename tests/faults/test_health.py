"""GET /health names each dependency and worker; one stopped service or worker turns it 503 naming it."""
import pytest
import requests

from citycache.runtime.heartbeat import TTL_SECONDS, WORKERS
from tests.support import start_program, start_service, stop_program, stop_service, wait_until

DEPENDENCIES = ("postgres", "redis", "kafka", "s3")


def health(base_url):
    response = requests.get(f"{base_url}/health", timeout=15)
    return response.status_code, response.json()


def health_when(base_url, wanted, timeout: float, message: str):
    """Poll /health until `wanted(status, body)` holds; the body that satisfied it."""
    def check():
        status, body = health(base_url)
        return body if wanted(status, body) else None

    return wait_until(check, timeout=timeout, message=message, interval=0.1)


def test_all_up(base_url):
    status, body = health(base_url)
    assert status == 200
    assert body["status"] == "up"
    assert {name: check["status"] for name, check in body["checks"].items()} == dict.fromkeys(DEPENDENCIES, "up")
    assert body["failing"] == []
    assert all(isinstance(check["checked_at"], float) for check in body["checks"].values())
    assert set(body["workers"]) == set(WORKERS)
    for worker in body["workers"].values():
        assert worker["status"] == "up" and 0 <= worker["age_s"] < TTL_SECONDS
    assert isinstance(body["outbox_backlog"], int) and isinstance(body["consumer_lag"], int)


def test_live_answers_without_checking_dependencies(base_url):
    response = requests.get(f"{base_url}/health/live", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "up"}


def test_a_stopped_pg_listener_is_named_and_its_backlog_shows(base_url, db, test_cities):
    test_cities("QQD", ("Delta", 1))
    stop_program("pg_listener")
    try:
        with db.cursor() as cur:
            cur.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQD'")
        status, body = health(base_url)  # a clean stop deletes the heartbeat at once
        assert status == 503 and body["failing"] == ["pg_listener"]
        assert body["workers"]["pg_listener"]["status"] == "down"
        assert body["outbox_backlog"] >= 1
    finally:
        start_program("pg_listener")
    body = health_when(base_url, lambda status, body: status == 200 and body["outbox_backlog"] == 0,
                       timeout=20, message="/health 200 with the outbox drained")
    assert body["workers"]["pg_listener"]["status"] == "up"


def test_a_stopped_kafka_cleaner_is_named_and_its_lag_shows(base_url, db, test_cities):
    test_cities("QQD", ("Delta", 1))
    stop_program("kafka_cleaner")
    try:
        with db.cursor() as cur:
            cur.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQD'")
        body = health_when(base_url, lambda status, body: body["consumer_lag"] >= 1,
                           timeout=20, message="the consumer lag to show the unconsumed event")
        assert body["failing"] == ["kafka_cleaner"] and body["consumer_lag"] >= 1
    finally:
        start_program("kafka_cleaner")
    health_when(base_url, lambda status, body: status == 200 and body["consumer_lag"] == 0,
                timeout=30, message="/health 200 with no consumer lag")


def test_a_stopped_consistency_sampler_is_shown_but_does_not_fail_readiness(base_url):
    stop_program("consistency_sampler")
    try:
        status, body = health(base_url)  # a clean stop deletes the heartbeat at once
        assert body["workers"]["consistency_sampler"]["status"] == "down"
        assert status == 200 and body["failing"] == []
    finally:
        start_program("consistency_sampler")
    health_when(base_url, lambda status, body: body["workers"]["consistency_sampler"]["status"] == "up",
                timeout=20, message="the sampler's heartbeat again")


@pytest.mark.slow
@pytest.mark.parametrize("service", DEPENDENCIES)
def test_one_service_down_is_503_naming_it(base_url, service, pipeline_flows):
    stop_service(service)
    try:
        body = health_when(base_url, lambda status, body: status == 503, timeout=20,
                           message=f"/health to notice {service} is down")
        assert body["status"] == "down"
        down = [name for name, check in body["checks"].items() if check["status"] == "down"]
        assert down == [service]
        assert body["checks"][service]["error"]
    finally:
        start_service(service)
    wait_until(lambda: health(base_url)[0] == 200, timeout=60, message=f"/health 200 after {service} restarted",
               interval=0.5)
    pipeline_flows()  # the workers recovered too, so later tests start from a working pipeline
