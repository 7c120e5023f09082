"""A multi-node topology on one machine, for the cluster tests, the scaling benchmark and dev runs.

    python -m ops.cluster start|stop     # ports 17000-17999; state, logs and pids in .run/cluster/
    python -m ops.cluster env            # the settings of its processes, as shell exports

3 Kafka brokers (KRaft, RF 3, min ISR 2) on 17100-17105, a Redis Cluster of 3 primaries and 3
replicas on 17001-17006 (buses 17051-17056; 17007 is a spare primary some tests add), a second plain
Redis on 17020 fed by a second consumer group (the fan-out), two static-member cleaners, two
pg_listeners, a consistency sampler, and an API on 17080 (and one on 17081 over the second Redis).
docker-compose.yml's profile `cluster` is the same topology in containers
(tests/containers/test_compose_cluster.py). The services come from ops/services.sh with a state dir of their own
(.run/cluster); Postgres is the stack's, with a database of its own (so its outbox and its NOTIFY
channel are not the default stack's).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import urllib.error
import urllib.request

import psycopg2

from citycache.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".run" / "cluster"
REDIS_PORTS = range(17001, 17007)
FANOUT_REDIS_PORT = 17020
# A node the tests add to the cluster as a new primary, and remove again (tests/redis_cluster.py).
SPARE_REDIS_PORT = 17007
KAFKA_PORTS = (17100, 17102, 17104)
HTTP_PORT, FANOUT_HTTP_PORT = 17080, 17081
DATABASE = "tutorial_cluster"
FANOUT_GROUP = "kafka_cleaner_fanout"
# A cleaner that dies and stays dead hands over its partitions after this; the brokers allow it
# (group.min.session.timeout.ms=1000 in ops/services/kafka.sh).
SESSION_TIMEOUT_MS = 3000


def _database_url() -> str:
    url = urlsplit(get_settings().database_url)
    return urlunsplit(url._replace(path="/" + DATABASE))


def environment() -> dict[str, str]:
    """The settings of every process of the topology (the environment wins over .env)."""
    return {
        "CITY_STATE_DIR": str(STATE),
        "DATABASE_URL": _database_url(),
        "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORTS[0]}/0",
        "REDIS_CLUSTER": "true",
        "KAFKA_BROKERS": "3",
        "KAFKA_BOOTSTRAP_SERVERS": ",".join(f"127.0.0.1:{port}" for port in KAFKA_PORTS),
        "KAFKA_REPLICATION_FACTOR": "3",
        "KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "HTTP_PORT": str(HTTP_PORT),
        "WEB_WORKERS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(STATE / "metrics"),
    }


FANOUT = {"REDIS_URL": f"redis://127.0.0.1:{FANOUT_REDIS_PORT}/0", "REDIS_CLUSTER": "false",
          "KAFKA_CONSUMER_GROUP": FANOUT_GROUP, "CITY_STATE_DIR": str(STATE / "fanout"),
          "HTTP_PORT": str(FANOUT_HTTP_PORT)}


def settings(**extra: str) -> Settings:
    values = {**environment(), **extra}
    return Settings(**{k.lower(): v for k, v in values.items() if k.lower() in Settings.model_fields})


# name -> (command, extra environment)
PROGRAMS = {
    "pg_listener": (["-m", "workers.pg_listener"], {}),
    "pg_listener-2": (["-m", "workers.pg_listener"], {}),
    "cleaner-1": (["-m", "workers.kafka_cleaner"], {"KAFKA_GROUP_INSTANCE_ID": "cleaner-1"}),
    "cleaner-2": (["-m", "workers.kafka_cleaner"], {"KAFKA_GROUP_INSTANCE_ID": "cleaner-2"}),
    "fanout-cleaner": (["-m", "workers.kafka_cleaner"], {**FANOUT, "KAFKA_GROUP_INSTANCE_ID": "fanout-1"}),
    # With REDIS_CLUSTER it walks every node's keys (a tracking connection would hear one node only).
    "consistency_sampler": (["-m", "workers.consistency_sampler"], {}),
    # No control socket: the config's sits in .run/ and belongs to the default stack's gunicorn.
    "web": (["-m", "gunicorn", "--config", "web/gunicorn.conf.py", "--no-control-socket", "web:create_app()"], {}),
    "fanout-web": (["-m", "gunicorn", "--config", "web/gunicorn.conf.py", "--no-control-socket",
                    "web:create_app()"], FANOUT),
}


class ClusterStack:
    def __init__(self) -> None:
        self.env = {**os.environ, **environment()}
        self.procs: dict[str, subprocess.Popen] = {}
        (STATE / "logs").mkdir(parents=True, exist_ok=True)

    # --- services -----------------------------------------------------------------------------

    def services(self, action: str, *names: str, fanout: bool = False) -> subprocess.Popen:
        env = {**self.env, **FANOUT} if fanout else self.env
        return subprocess.Popen([str(ROOT / "ops" / "services.sh"), action, *names], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run_services(self, *calls: subprocess.Popen, timeout: float = 180) -> None:
        for call in calls:
            out, _ = call.communicate(timeout=timeout)
            if call.returncode:
                raise RuntimeError(f"{' '.join(call.args)} failed:\n{out}")

    def start(self, programs=tuple(PROGRAMS)) -> None:
        # In parallel: the brokers are the slow part (a JVM start each, themselves in parallel).
        self.run_services(self.services("start", "kafka"), self.services("start", "redis"),
                          self.services("start", "redis", fanout=True))
        self.seed_database()
        for name in programs:
            self.start_program(name)
        for name, port in (("web", HTTP_PORT), ("fanout-web", FANOUT_HTTP_PORT)):
            if name in programs:
                _await(lambda port=port: _answers(f"http://127.0.0.1:{port}/health/live"), 60, f"the API on {port}")

    def stop(self) -> None:
        for name in list(self.procs):
            self.stop_program(name)
        self.run_services(self.services("stop", "redis", "kafka"), self.services("stop", "redis", fanout=True))

    def seed_database(self) -> None:
        url = urlsplit(_database_url())
        admin = psycopg2.connect(urlunsplit(url._replace(path="/postgres")))
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DATABASE}"')
        admin.close()
        # Few cities (the tests add their own): schema, trigger and a small load, no images.
        subprocess.run([sys.executable, "-m", "ops.seed", "--skip-images", "--min-population", "15000"],
                       cwd=ROOT, env=self.env, check=True, capture_output=True, timeout=120)
        conn = psycopg2.connect(_database_url())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DELETE FROM city WHERE countrycode LIKE 'QQ_'")
        conn.close()

    # --- programs -----------------------------------------------------------------------------

    def start_program(self, name: str, program: tuple[list[str], dict] | None = None) -> subprocess.Popen:
        """One of PROGRAMS by name, or another `program` (arguments, extra environment) under `name`."""
        _kill_leftover(name)
        args, extra = program or PROGRAMS[name]
        log = open(STATE / "logs" / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**self.env, **extra},
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        (STATE / "pids").mkdir(exist_ok=True)
        (STATE / "pids" / name).write_text(str(self.procs[name].pid))
        return self.procs[name]

    def kill_program(self, name: str) -> None:
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_program(self, name: str) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def log_size(self, name: str) -> int:
        path = STATE / "logs" / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def log_lines(self, name: str, since: int = 0) -> list[dict]:
        with open(STATE / "logs" / f"{name}.log", "rb") as log:
            log.seek(since)
            lines = []
            for raw in log.read().decode("utf-8", "replace").splitlines():
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    pass
            return lines

    # --- nodes --------------------------------------------------------------------------------

    @staticmethod
    def redis_pid(port: int) -> int:
        return int((STATE / "redis" / str(port) / "redis.pid").read_text().split()[0])

    @staticmethod
    def kafka_pid(node: int) -> int:
        return int((STATE / "kafka" / f"node-{node}" / "kafka.pid").read_text().split()[0])

    @staticmethod
    def active_controller() -> int:
        """The quorum leader, as the nodes last recorded it (the newest epoch wins)."""
        states = []
        for node in (1, 2, 3):
            path = STATE / "kafka" / f"node-{node}" / "data" / "__cluster_metadata-0" / "quorum-state"
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            states.append((state.get("leaderEpoch", -1), state.get("leaderId", -1)))
        epoch, leader = max(states)
        return leader


def _kill_leftover(name: str, sig: int = signal.SIGKILL) -> None:
    """A program an earlier run left behind (its own session, ours by its state dir) goes first."""
    try:
        pid = int((STATE / "pids" / name).read_text())
        with open(f"/proc/{pid}/environ", "rb") as environ:
            ours = f"CITY_STATE_DIR={STATE}".encode() in environ.read().split(b"\0")
        if ours and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
    except (OSError, ValueError):
        pass


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _await(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    action = (argv if argv is not None else sys.argv[1:] or ["usage"])[0]
    if action == "env":
        print("\n".join(f"export {name}='{value}'" for name, value in environment().items()))
    elif action == "start":
        ClusterStack().start()
        print(f"cluster: up; API on http://127.0.0.1:{HTTP_PORT}, second cache's API on :{FANOUT_HTTP_PORT}")
    elif action == "stop":
        stack = ClusterStack()
        for name in PROGRAMS:
            _kill_leftover(name, signal.SIGTERM)
        stack.run_services(stack.services("stop", "redis", "kafka"), stack.services("stop", "redis", fanout=True))
    else:
        print("usage: python -m ops.cluster start|stop|env", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
