"""GET /health names each dependency; one stopped service turns it 503 with that service down."""
import pytest
import requests

from tests.conftest import run_ops, wait_until

DEPENDENCIES = ("postgres", "redis", "kafka", "s3")


def health(base_url):
    response = requests.get(f"{base_url}/health", timeout=15)
    return response.status_code, response.json()


def test_all_up(base_url):
    status, body = health(base_url)
    assert status == 200
    assert body["status"] == "up"
    assert {name: check["status"] for name, check in body["checks"].items()} == dict.fromkeys(DEPENDENCIES, "up")


@pytest.mark.slow
@pytest.mark.parametrize("service", DEPENDENCIES)
def test_one_service_down_is_503_naming_it(base_url, service, pipeline_flows):
    run_ops("services.sh", "stop", service)
    try:
        def reports_down():
            status, body = health(base_url)
            return body if status == 503 else None

        body = wait_until(reports_down, timeout=20, message=f"/health to notice {service} is down")
        assert body["status"] == "down"
        down = [name for name, check in body["checks"].items() if check["status"] == "down"]
        assert down == [service]
        assert body["checks"][service]["error"]
    finally:
        run_ops("services.sh", "start", service)
    wait_until(lambda: health(base_url)[0] == 200, timeout=60, message=f"/health 200 after {service} restarted",
               interval=0.5)
    pipeline_flows()  # the workers recovered too, so later tests start from a working pipeline
