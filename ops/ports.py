"""Before bin/run starts anything: every port this clone needs is free, or one line per taken port
names the port, the process holding it and the setting that moves ours (`python -m ops.ports`)."""
from __future__ import annotations

import re
import subprocess
import sys
from typing import Callable, NamedTuple
from urllib.parse import urlsplit

from citycache.settings import Settings, get_settings


class Port(NamedTuple):
    number: int
    what: str
    # The .env line that would put our service elsewhere, given the new value of the port it names.
    setting: Callable[[int], str]
    # The port that setting names, and the ports the service takes relative to it.
    base: int
    offsets: tuple[int, ...] = (0,)


def _with_port(url: str, port: int) -> str:
    """URL with another port; a password shows as *** (the line is printed)."""
    parts = urlsplit(url)
    user = parts.username or ""
    if parts.password is not None:
        user += ":***"
    netloc = f"{user}@" if user else ""
    return parts._replace(netloc=f"{netloc}{parts.hostname}:{port}").geturl()


def needed(settings: Settings) -> list[Port]:
    """The ports our services and the API listen on, as ops/services.sh lays them out: each Kafka node
    takes two (broker, controller), each Redis Cluster node its port and a bus port 50 above."""
    kafka_host, _, kafka_port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
    s3_host, _, s3_port = settings.s3_endpoint.rpartition(":")
    kafka, broker = f"KAFKA_BOOTSTRAP_SERVERS={kafka_host}:{{}}", int(kafka_port)
    pg, redis = urlsplit(settings.database_url).port or 5432, urlsplit(settings.redis_url).port or 6379
    kafka_ports = tuple(range(2 * settings.kafka_brokers))
    redis_ports = (*range(6), *range(50, 56)) if settings.redis_cluster else (0,)
    return [
        Port(pg, "Postgres", lambda p: f"DATABASE_URL={_with_port(settings.database_url, p)}", pg),
        *(Port(redis + o, _redis_name(o, settings.redis_cluster),
               lambda p: f"REDIS_URL={_with_port(settings.redis_url, p)}", redis, redis_ports) for o in redis_ports),
        *(Port(broker + o, _kafka_name(o, settings.kafka_brokers), kafka.format, broker, kafka_ports)
          for o in kafka_ports),
        Port(int(s3_port), "the S3 store", lambda p: f"S3_ENDPOINT={s3_host}:{p}", int(s3_port)),
        Port(settings.http_port, "the API", lambda p: f"HTTP_PORT={p}", settings.http_port),
    ]


def _kafka_name(offset: int, brokers: int) -> str:
    node = f" node {offset // 2 + 1}" if brokers > 1 else ""
    return f"Kafka{node}" if offset % 2 == 0 else f"the controller of Kafka{node}, its port + 1"


def _redis_name(offset: int, cluster: bool) -> str:
    if not cluster:
        return "Redis"
    return f"Redis node {offset + 1}" if offset < 50 else f"the cluster bus of Redis node {offset - 49}"


def listeners() -> dict[int, str]:
    """Every TCP port something listens on, with 'name pid N' of its holder when ss can tell."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found: dict[int, str] = {}
    for line in out.splitlines():
        fields = line.split()
        port = int(fields[3].rpartition(":")[2])
        holder = re.search(r'users:\(\("([^"]*)",pid=(\d+)', line)
        found.setdefault(port, f"{holder[1]} pid {holder[2]}" if holder else "a process ss cannot name")
    return found


def problems(ports: list[Port], taken: dict[int, str]) -> list[str]:
    """One line per taken port, with a free port to move to."""
    ours = {port.number for port in ports}
    lines = []
    for port in ports:
        if port.number not in taken:
            continue
        free = next(p for p in range(port.base + 1, 65536 - max(port.offsets))
                    if not any(p + o in taken or p + o in ours for o in port.offsets))
        lines.append(f"run: port {port.number} ({port.what}) is taken by another process ({taken[port.number]}); "
                     f"set {port.setting(free)} in .env")
    return lines


def main() -> int:
    lines = problems(needed(get_settings()), listeners())
    for line in lines:
        print(line, file=sys.stderr)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
