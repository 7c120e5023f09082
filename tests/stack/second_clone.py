"""A second clone of this working tree on ports of its own, bin/run in a real pseudo-terminal, and a
census of the processes that belong to that clone."""
from __future__ import annotations

import hashlib
import os
import select
import shutil
import subprocess
import threading
from pathlib import Path

import requests

from citycache.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Our range for extra stacks is 15000-15999; Kafka's controller takes KAFKA + 1.
PORTS = {"postgres": 15432, "redis": 15379, "kafka": 15092, "s3": 15900, "http": 15800}


class Clone:
    """A copy of the working tree (tracked and new files, not .run/ or .env) with its own .env."""

    def __init__(self, path: Path, ports: dict[str, int] = PORTS) -> None:
        self.path, self.ports = path, ports
        files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                               capture_output=True).stdout.decode().split("\0")
        for name in filter(None, files):
            if (ROOT / name).is_file():
                (path / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, path / name)
        (path / ".env").write_text(
            f"DATABASE_URL=postgresql://postgres:root@localhost:{ports['postgres']}/tutorial\n"
            f"REDIS_URL=redis://localhost:{ports['redis']}/0\n"
            f"KAFKA_BOOTSTRAP_SERVERS=localhost:{ports['kafka']}\n"
            f"S3_ENDPOINT=localhost:{ports['s3']}\n"
            f"HTTP_PORT={ports['http']}\n")
        # As ops/env.sh names it: the clone's Postgres cluster lives outside the clone.
        self.pg_dir = Path("/var/lib/postgresql/city-cache-" + hashlib.sha256(str(path).encode()).hexdigest()[:12])
        # The clone's .env must decide, not settings this process happens to have in its environment.
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in Settings.model_fields and k not in ("CITY_STATE_DIR", "PG_STATE_DIR")}

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.path / args[0]), *args[1:]], cwd="/", env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def census(self) -> list[str]:
        """Every process working in, started from or configured with this clone, but this one."""
        marks = [str(self.path), str(self.pg_dir)]
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cwd = os.readlink(entry / "cwd")
                cmdline = (entry / "cmdline").read_bytes()
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone meanwhile, or a zombie
                continue
            if any(m in cwd or m.encode() in cmdline or m.encode() in environ for m in marks):
                command = cmdline.replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name} {command[:100]}")
        return found

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.ports['http']}/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def pid_file(self, name: str) -> int:
        return int((self.path / ".run" / name).read_text().split()[0])

    def remove(self) -> None:
        shutil.rmtree(self.pg_dir, ignore_errors=True)
        shutil.rmtree(self.path, ignore_errors=True)


class Terminal:
    """A command as the session leader of a new pseudo-terminal, as in a terminal window."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        # setsid -c: a session of its own with this terminal as its controlling terminal. env resets the
        # signals a terminal's shell starts with: under `nohup` (or as a background job) the suite would
        # pass SIGHUP ignored on, and bash cannot trap a signal ignored at its start.
        self.process = subprocess.Popen(["env", "--default-signal=HUP,INT,QUIT,TERM,PIPE", "setsid", "-c", *argv],
                                        cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        self.output = bytearray()
        self._open = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # Drained all along: a full terminal buffer would block the writers.
        while self._open:
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO once no process has the terminal open any more
                    return
                if not data:
                    return
                self.output += data

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        """The window closes: the terminal hangs up (SIGHUP to its session)."""
        if self._open:
            self._open = False
            self._reader.join()
            os.close(self.master)

