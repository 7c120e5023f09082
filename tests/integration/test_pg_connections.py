"""The API keeps its Postgres connections: a burst of misses, health probes or metrics scrapes opens no
more sessions than its pools hold (pg_stat_database.sessions), and a connection that lost its server
is replaced without failing a request."""
import os
import socket
import sys
from pathlib import Path

import pytest
import requests

from bench.miss_latency import Client, misses, pool_size, probes, sessions_opened
from tests.support import Spawned, wait_until

BURSTS = {
    "100 misses": lambda client: misses(client, 100, []),
    "20 /health": lambda client: probes(client, "/health", 20),
    "20 /metrics": lambda client: probes(client, "/metrics", 20),
}


@pytest.fixture
def client(base_url):
    client = Client()
    yield client
    client.close()


@pytest.mark.parametrize("burst", BURSTS, ids=str)
def test_a_burst_opens_no_more_sessions_than_the_pools_hold(client, db, burst):
    opened = sessions_opened(db, lambda: BURSTS[burst](client))
    assert opened <= pool_size(), f"{burst} opened {opened} Postgres sessions; the pools hold {pool_size()}"


def test_connections_killed_under_the_pool_are_replaced_without_a_failed_request(client, db):
    probes(client, "/health", 5)  # each process keeps a few connections (a probe uses three at once)
    with db.cursor() as cur:
        cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'web' AND datname = current_database()")
        (killed,) = cur.fetchone()
    assert killed >= 2, "the API held no pooled connection to kill"
    answered: list[float] = []
    misses(client, 20, answered)  # raises on anything but a 200
    probes(client, "/health", 5)
    assert len(answered) == 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_api_starts_and_answers_503_while_postgres_is_away(settings, tmp_path):
    """Nothing connects at start: the API comes up without Postgres, says 503, and serves once it is back
    (here: never, since its DATABASE_URL names a port nobody listens on)."""
    port, away = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres:root@127.0.0.1:{away}/tutorial",
           "HTTP_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "WEB_WORKERS": "1"}
    api = Spawned([str(Path(sys.executable).parent / "gunicorn"), "--config", "web/gunicorn.conf.py",
                   "--control-socket", str(tmp_path / "gunicorn.ctl"), "web:create_app()"], env=env)
    try:
        api.wait_for_line("Booting worker")
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/health/live"), timeout=30, message="the API to answer /health/live")
        response = requests.get(f"{url}/cities/QMZ", timeout=10)
        assert response.status_code == 503 and response.json()["status"] == 503, response.text
        health = requests.get(f"{url}/health", timeout=15)
        assert health.status_code == 503 and "postgres" in health.json()["failing"], health.text
    finally:
        api.process.terminate()
        api.finish(timeout=30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False
