"""GET /openapi.json describes exactly the app's routes; schemathesis finds nothing against the live app."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

SPEC = json.loads((ROOT / "web" / "openapi.json").read_text())


def app_routes() -> set[tuple[str, str]]:
    from web import create_app

    app = create_app({"TESTING": True})
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_the_document_describes_every_route_and_only_those():
    documented = {(method, path) for path, item in SPEC["paths"].items() for method in item}
    assert documented == app_routes()


def test_the_live_document_is_the_file(base_url, http):
    response = http.get(f"{base_url}/openapi.json")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.json() == SPEC


def test_the_docs_page_lists_every_operation(base_url, http):
    response = http.get(f"{base_url}/docs")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    for path, item in SPEC["paths"].items():
        for method in item:
            assert f"{method.upper()} {path}</code>" in response.text


@pytest.mark.parametrize("method", ["post", "delete"])
def test_an_undeclared_method_is_405_with_allow(base_url, http, method):
    response = http.request(method, f"{base_url}/cities/BGR")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert response.json()["status"] == 405


def test_schemathesis_finds_nothing_against_the_live_app(base_url, tmp_path):
    exe = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(exe), "run", f"{base_url}/openapi.json", "--checks", "all", "--max-examples", "40",
         "--request-timeout", "15", "--seed", "4"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
