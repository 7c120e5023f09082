"""python -m bench.scrape_cost: what one GET /health and one GET /metrics cost (latency, new Kafka connections).

A connection the client closes stays in TIME_WAIT on this machine for a minute, so the sockets
closed towards the Kafka port, counted before and after N requests, are the connections those
requests opened and closed. A long-lived admin client opens none per request.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import requests

from citycache.settings import get_settings


def kafka_port() -> int:
    return int(get_settings().kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1])


def closed_kafka_connections(port: int) -> set[tuple[str, str]]:
    """Sockets closed by this side towards the Kafka port (closing or in TIME_WAIT): the last minute's.

    A set of (local, peer) addresses, not a count: sockets of earlier connections leave TIME_WAIT
    while we measure, so only the ones that are new count."""
    states = [arg for state in ("fin-wait-1", "fin-wait-2", "closing", "time-wait") for arg in ("state", state)]
    out = subprocess.run(["ss", "-Htan", *states, f"( dport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return {tuple(line.split()[-2:]) for line in out.splitlines() if line.strip()}


def measure(path: str, requests_count: int = 20) -> dict:
    """p50 latency in ms and Kafka connections opened per request, after one warm-up request."""
    settings, port = get_settings(), kafka_port()
    url = f"http://127.0.0.1:{settings.http_port}{path}"
    with requests.Session() as http:
        http.get(url, timeout=15)  # warm-up: a long-lived client connects once here
        before = closed_kafka_connections(port)
        latencies = []
        for _ in range(requests_count):
            started = time.perf_counter()
            http.get(url, timeout=15)
            latencies.append((time.perf_counter() - started) * 1000)
        opened = len(closed_kafka_connections(port) - before)
    return {"path": path, "p50_ms": round(statistics.median(latencies), 1),
            "kafka_connections_per_request": round(opened / requests_count, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    for path in ("/health", "/metrics"):
        print(measure(path, args.requests))


if __name__ == "__main__":
    main()
