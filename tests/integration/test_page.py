"""GET /, the page for people: rendered by headless Chromium (screenshot saved in artifacts/) and over HTTP."""
import html
import re
import shutil
import subprocess

import pytest

from tests.support import ROOT, wait_until

ARTIFACTS = ROOT / "artifacts"


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed (ops/install.sh installs Debian's package)")
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900", *args],
        capture_output=True, text=True, timeout=120)


def test_chromium_renders_the_page_with_bulgarias_cities_and_the_images(base_url, tmp_path):
    url = f"{base_url}/?country=BGR"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "page-BGR.png"
    shot.unlink(missing_ok=True)
    result = chromium(tmp_path, f"--screenshot={shot}", url)
    assert shot.exists(), result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    dom = chromium(tmp_path, "--dump-dom", url).stdout
    cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", dom)]
    assert "Dobric" in cells and "Sofia" in cells
    assert re.search(r'<option value="BGR" selected="">BGR · Bulgaria', dom)
    assert re.search(r'id="source">the (cache|database)</span>', dom)
    assert 'href="/image/bulgaria.svg"' in dom and 'href="/image/world.png"' in dom


def test_the_page_says_where_the_cities_came_from_and_their_age(base_url, http, redis, test_cities):
    test_cities("QQA", ("Alpha", 1234567))
    first = http.get(f"{base_url}/?country=qqa")
    assert first.status_code == 200 and first.headers["Content-Type"].startswith("text/html")
    assert 'id="source">the database</span>' in first.text and "just loaded" in first.text
    assert "1,234,567" in first.text
    second = http.get(f"{base_url}/?country=QQA")
    assert 'id="source">the cache</span>' in second.text
    assert re.search(r'id="age">cached \d+ s ago', second.text)


def test_the_picker_lists_countries_with_their_names(base_url, http):
    text = http.get(base_url + "/").text
    options = re.findall(r'<option value="([A-Z]{3})"', text)
    assert len(options) > 200 and options == sorted(options) and "BGR" in options


@pytest.mark.parametrize("country, status, message", [("B1", 400, "three letters"), ("QQZ", 404, "no cities")])
def test_a_bad_or_unknown_country_is_said_on_the_page(base_url, http, country, status, message):
    response = http.get(f"{base_url}/?country={country}")
    assert response.status_code == status and message in response.text
    assert "<select" in response.text  # the picker stays usable


def test_chromium_draws_the_last_minutes_of_consistency_and_commit_to_delete_latency(base_url, http, test_cities,
                                                                                       tmp_path):
    """The panel the consistency sampler and kafka_cleaner feed: figures and a sparkline each, server-rendered."""
    test_cities("QQB", ("Beta", 1))  # an invalidation: a commit->DEL latency in the window
    http.get(f"{base_url}/cities/QQB")  # a cached key for the sampler to compare

    def drawn(text: str) -> bool:
        line = re.search(r'<svg id="consistency-line"[^>]*>(.*?)</svg>', text)
        return bool(line and "<polyline" in line.group(1) and re.search(r'id="consistency">\d+\.\d+ %', text)
                    and re.search(r'id="latency">(≥ )?[\d.]+ m?s<', text))

    # Each gunicorn process keeps its own snapshots: new connections until both draw it, a few times over.
    wait_until(lambda: all(drawn(http.get(f"{base_url}/?country=QQB", headers={"Connection": "close"}).text)
                           for _ in range(4)), timeout=40, interval=1, message="the panel drawn by every process")
    dom = chromium(tmp_path, "--dump-dom", f"{base_url}/?country=QQB").stdout
    assert drawn(dom), dom[-3000:]
    shot = ARTIFACTS / "page-invalidation.png"  # the README's picture, docs/page.png
    shot.unlink(missing_ok=True)
    chromium(tmp_path, f"--screenshot={shot}", f"{base_url}/?country=BGR")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = re.search(r'<svg id="consistency-line"[^>]*><polyline points="([^"]+)"', dom).group(1).split()
    assert len(points) >= 2 and all(0 <= float(x) <= 240 and 0 <= float(y) <= 36 for x, y in
                                    (p.split(",") for p in points))
    assert re.search(r'id="stale">\d+</span>', dom)
