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
    # The port that setting names, and how many ports from there the service takes (Kafka: 2).
    base: int
    width: int = 1


def _with_port(url: str, port: int) -> str:
    """URL with another port; a password shows as *** (the line is printed)."""
    parts = urlsplit(url)
    user = parts.username or ""
    if parts.password is not None:
        user += ":***"
    netloc = f"{user}@" if user else ""
    return parts._replace(netloc=f"{netloc}{parts.hostname}:{port}").geturl()


def needed(settings: Settings) -> list[Port]:
    """The ports our services and the API listen on (Kafka's controller takes the broker's + 1)."""
    kafka_host, _, kafka_port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
    s3_host, _, s3_port = settings.s3_endpoint.rpartition(":")
    kafka, broker = f"KAFKA_BOOTSTRAP_SERVERS={kafka_host}:{{}}", int(kafka_port)
    pg, redis = urlsplit(settings.database_url).port or 5432, urlsplit(settings.redis_url).port or 6379
    return [
        Port(pg, "Postgres", lambda p: f"DATABASE_URL={_with_port(settings.database_url, p)}", pg),
        Port(redis, "Redis", lambda p: f"REDIS_URL={_with_port(settings.redis_url, p)}", redis),
        Port(broker, "Kafka", kafka.format, broker, 2),
        Port(broker + 1, "Kafka's controller, the broker's port + 1", kafka.format, broker, 2),
        Port(int(s3_port), "the S3 store", lambda p: f"S3_ENDPOINT={s3_host}:{p}", int(s3_port)),
        Port(settings.http_port, "the API", lambda p: f"HTTP_PORT={p}", settings.http_port),
    ]


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
        free = next(p for p in range(port.base + port.width, 65536 - port.width)
                    if not any(q in taken or q in ours for q in range(p, p + port.width)))
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
