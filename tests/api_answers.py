"""What the running API answers, process by process: the near caches' view from outside."""
import os

from prometheus_client.parser import text_string_to_metric_families

from citycache.read.cities import CITIES, render_cities
from citycache.read.tracking import NAME_PREFIX
from tests.support import wait_until


def answers(http, base_url, code: str, n: int = 12) -> set[bytes]:
    """The data of n answers on new connections, so both gunicorn processes serve some."""
    out = set()
    for _ in range(n):
        response = http.get(f"{base_url}/cities/{code}", headers={"Connection": "close"})
        assert response.status_code == 200
        out.add(response.content.split(b'"data":', 1)[1])
    return out


def expect(http, base_url, code: str, rows: list[tuple[str, int]]) -> None:
    """Every process answers `rows` from now on (awaited: the push takes a moment)."""
    want = {render_cities(rows) + b"}"}
    wait_until(lambda: answers(http, base_url, code) == want, timeout=15, message=f"{code} to be fresh everywhere")
    assert answers(http, base_url, code, n=20) == want


def stale_answers(http, base_url, conn, codes, n: int = 20) -> list[str]:
    """Of n answers of /cities/<code> per code, those whose data is not what the database holds now."""
    stale = []
    for code in codes:
        want = CITIES.load(conn, code)
        for _ in range(n):
            response = http.get(f"{base_url}/cities/{code}", timeout=10)
            got = response.content.split(b'"data":', 1)[-1][:-1]
            missing = want == CITIES.missing and response.status_code == 404  # no cities: a 404
            if (response.status_code, got) != (200, want) and not missing:
                stale.append(f"{code}: {response.status_code} {got[:100]!r}, the database {want[:100]!r}")
    return stale


def near_metric(http, base_url, name: str, **labels) -> float:
    text = http.get(f"{base_url}/metrics", timeout=15).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and sample.labels == labels)


def tracking_clients(redis) -> dict[str, int]:
    """The API processes' tracking connections (not a listener of this test process)."""
    return {c["name"]: int(c["id"]) for c in redis.client_list()
            if c.get("name", "").startswith(NAME_PREFIX) and c["name"] != f"{NAME_PREFIX}{os.getpid()}"}


def warm(http, base_url, *codes: str) -> None:
    """Fill every process' near cache (several answers each, so hits show in the metrics)."""
    before = near_metric(http, base_url, "citycache_near_cache_lookups_total", result="hit")
    for code in codes:
        answers(http, base_url, code, n=20)
    assert near_metric(http, base_url, "citycache_near_cache_lookups_total", result="hit") > before
