"""JSON log lines with a request id: kept from X-Request-ID when sane, else made, echoed, logged."""
import json
import re

import pytest

from tests.support import wait_until

from citycache.read.cities import key as cache_key


def lines_with(app_log, request_id: str) -> list[dict]:
    found = []
    for line in app_log().splitlines():
        if request_id in line and line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_a_sane_request_id_is_kept_echoed_and_on_the_access_line(base_url, http, app_log):
    response = http.get(f"{base_url}/cities/BGR", headers={"X-Request-ID": "test-logs-kept.1"})
    assert response.headers["X-Request-ID"] == "test-logs-kept.1"
    access = wait_until(lambda: [l for l in lines_with(app_log, "test-logs-kept.1") if l["logger"] == "gunicorn.access"],
                        message="the access log line")
    (line,) = access
    assert line["component"] == "web"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/cities/BGR", 200)
    assert line["bytes"] == len(response.content)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


@pytest.mark.parametrize("incoming", [None, "", "x" * 200, "two words", "new\tline", "é"])
def test_a_missing_or_insane_request_id_is_replaced(base_url, http, incoming):
    headers = {} if incoming is None else {"X-Request-ID": incoming.encode("utf-8")}
    response = http.get(f"{base_url}/health/live", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert response.headers["X-Request-ID"] != incoming


def test_log_lines_during_the_request_carry_its_id(base_url, http, redis, test_cities, app_log):
    test_cities("QQA", ("Alpha", 1))
    redis.delete(cache_key("QQA"))
    response = http.get(f"{base_url}/cities/QQA", headers={"X-Request-ID": "test-logs-miss"})
    assert response.json()["source"] == "db"
    lines = wait_until(lambda: len(lines_with(app_log, "test-logs-miss")) >= 2 and lines_with(app_log, "test-logs-miss"),
                       message="the miss and access lines")
    miss = [l for l in lines if l["logger"] == "web.cached"]
    assert miss and miss[0]["request_id"] == "test-logs-miss" and miss[0]["key"] == cache_key("QQA")


def test_error_responses_carry_the_request_id_too(base_url, http):
    response = http.get(f"{base_url}/cities/12", headers={"X-Request-ID": "test-logs-400"})
    assert response.status_code == 400
    assert response.headers["X-Request-ID"] == "test-logs-400"
