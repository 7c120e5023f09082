"""Fixtures for tests against the running stack (bin/test starts it; so does bin/run)."""
from __future__ import annotations

import contextlib
from pathlib import Path

import psycopg2
import pytest
import requests

from citycache.runtime.clients import redis_client, s3_client
from citycache.read.cities import key as cache_key
from citycache.read.countries import key as country_key
from citycache.settings import get_settings
from tests.support import ROOT, wait_until

# User-assigned ISO 3166 codes (QM-QZ): never a real country, so tests own these rows outright.
TEST_CODES = ("QQA", "QQB", "QQC", "QQD", "QQE", "QQF")


@pytest.fixture(scope="session")
def settings():
    return get_settings()


@pytest.fixture(scope="session")
def base_url(settings):
    url = f"http://127.0.0.1:{settings.http_port}"

    def answers():
        try:
            return requests.get(f"{url}/health", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(answers, timeout=60, message=f"{url}/health to answer 200 (is the stack up? bin/test starts it)",
               interval=0.5)
    return url


@pytest.fixture(scope="session")
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def db(settings):
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def redis(settings):
    client = redis_client(settings)
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3(settings):
    return s3_client(settings)


@pytest.fixture
def invalidated(redis):
    """`with invalidated("QQA"): <write>` returns once the pipeline deleted cities_QQA after the write
    (`key=country_key`: country_QQA).

    A marker value is put under the key first; its disappearance is the invalidation arriving.
    """
    @contextlib.contextmanager
    def waiting_for(code: str, timeout: float = 15.0, key=cache_key):
        redis.set(key(code), b"marker: not yet invalidated", ex=600)
        yield
        wait_until(lambda: not redis.exists(key(code)), timeout=timeout,
                   message=f"the invalidation of {key(code)}")

    return waiting_for


@pytest.fixture
def pipeline_flows(settings, invalidated):
    """Returns once a committed write has travelled Postgres -> Kafka -> Redis (after a fault)."""

    def check(timeout: float = 60.0):
        conn = psycopg2.connect(settings.database_url)  # a fresh one: Postgres may have restarted
        conn.autocommit = True
        try:
            with invalidated("QQE", timeout=timeout), conn.cursor() as cur:
                cur.execute("INSERT INTO city (name, countrycode, district, population) VALUES ('Probe', 'QQE', '', 0)")
            with invalidated("QQE", timeout=timeout), conn.cursor() as cur:
                cur.execute("DELETE FROM city WHERE countrycode = 'QQE'")
        finally:
            conn.close()

    return check


@pytest.fixture
def test_cities(db, redis, invalidated, settings):
    """Rows under the user-assigned test codes, removed (and their keys invalidated) afterwards.

    `add` returns once the insert's own invalidation went by, so a test's reads after it are not
    raced by it.
    """

    def add(code: str, *cities: tuple[str, int]):
        # One statement, so one commit and one invalidation: with a commit per row the marker would
        # vanish at the first row's DEL, and a later row's DEL could hit the test's next read.
        with invalidated(code), db.cursor() as cur:
            cur.execute(
                "INSERT INTO city (name, countrycode, district, population)"
                " SELECT name, %s, 'Test', population FROM unnest(%s::text[], %s::int[]) AS t(name, population)",
                (code, [name for name, _ in cities], [population for _, population in cities]))

    yield add
    conn = psycopg2.connect(settings.database_url)  # a fresh one: the test may have restarted Postgres
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT countrycode FROM city WHERE countrycode = ANY(%s)", (list(TEST_CODES),))
            with contextlib.ExitStack() as waits:
                for (code,) in cur.fetchall():
                    waits.enter_context(invalidated(code))  # the next test must not be raced by this delete
                cur.execute("DELETE FROM city WHERE countrycode = ANY(%s)", (list(TEST_CODES),))
    finally:
        conn.close()
    redis.delete(*[cache_key(code) for code in TEST_CODES])


@pytest.fixture
def test_countries(db, redis, invalidated, settings):
    """Countries (and their languages) under the test codes, removed afterwards, as test_cities does
    for cities. `add` returns once the insert's own invalidation of country_<CODE> went by."""

    def add(code: str, name: str = "Testland", languages: tuple[str, ...] = ("tl",), capital: str | None = None):
        with invalidated(code, key=country_key), db.cursor() as cur:
            cur.execute("INSERT INTO country (code, name, continent, population, capital, code2)"
                        " VALUES (%s, %s, 'Europe', 1000, (SELECT min(id) FROM city WHERE countrycode = %s AND name = %s),"
                        " 'QQ')", (code, name, code, capital))
        if languages:
            with invalidated(code, key=country_key), db.cursor() as cur:
                cur.execute("INSERT INTO countrylanguage (countrycode, language) SELECT %s, unnest(%s::text[])",
                            (code, list(languages)))

    yield add
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT code FROM country WHERE code = ANY(%s) UNION SELECT countrycode FROM countrylanguage"
                        " WHERE countrycode = ANY(%s)", (list(TEST_CODES), list(TEST_CODES)))
            with contextlib.ExitStack() as waits:
                for (code,) in cur.fetchall():
                    waits.enter_context(invalidated(code, key=country_key))
                cur.execute("DELETE FROM countrylanguage WHERE countrycode = ANY(%s);"
                            " DELETE FROM country WHERE code = ANY(%s)", (list(TEST_CODES), list(TEST_CODES)))
    finally:
        conn.close()
    redis.delete(*[country_key(code) for code in TEST_CODES])


@pytest.fixture
def app_log(settings):
    """The programs' log lines (JSON) written since the test started: LOG_DIR/<program>.log, the files
    supervisord writes (ops/app.sh and bin/run start it with LOG_DIR from the settings), and the access
    log gunicorn writes itself."""
    log_dir = Path(settings.log_dir) if Path(settings.log_dir).is_absolute() else ROOT / settings.log_dir
    paths = [log_dir / f"{name}.log" for name in ("web", "pg_listener", "kafka_cleaner", "consistency_sampler", "access")]
    starts = {path: path.stat().st_size if path.exists() else 0 for path in paths}

    def new_lines() -> str:
        text = []
        for path in paths:
            with open(path, "rb") as log:
                log.seek(starts[path])
                text.append(log.read().decode("utf-8", "replace"))
        return "".join(text)

    return new_lines


_FAULT_TIMES: dict[str, float] = {}


@pytest.fixture(scope="session")
def fault_times():
    """Seconds from recovery to a consistent cache, per fault scenario (reported at the end)."""
    return _FAULT_TIMES


def pytest_terminal_summary(terminalreporter):
    if not _FAULT_TIMES:
        return
    import json

    terminalreporter.section("time to consistency after each fault")
    for scenario, seconds in _FAULT_TIMES.items():
        terminalreporter.write_line(f"{seconds:7.2f} s  {scenario}")
    out = ROOT / "artifacts"
    out.mkdir(exist_ok=True)
    (out / "fault-times.json").write_text(json.dumps(_FAULT_TIMES, indent=2) + "\n")
