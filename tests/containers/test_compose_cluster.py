"""docker-compose.yml's profile `cluster` against ops/cluster.py, the topology the cluster tests run: the
same node counts, the brokers' settings (ops/services/kafka.sh renders them for three brokers), the
Redis nodes' (ops/services/redis.sh), the topic's configuration, the apps' settings, the listeners and
cleaners; and wired as the default profile is (endpoints, health, start order)."""
from __future__ import annotations

import os
import re
import subprocess
from urllib.parse import urlsplit

import pytest

from citycache.settings import Settings
from ops import cluster as topo
from tests.containers.helpers import ROOT, command_args, env_of, programs, services

APPS = ("cluster-app-1", "cluster-app-2")
# What differs from broker to broker, and how the quorum is named (a static voter list in compose,
# where ops/ formats its storage with the initial controllers instead).
PER_NODE = {"node.id", "listeners", "advertised.listeners", "log.dirs", "controller.quorum.voters",
            "controller.quorum.bootstrap.servers"}


def cluster_services() -> dict:
    return {name: s for name, s in services().items() if "cluster" in s.get("profiles", [])}


def of_image(kind: str) -> dict:
    return {name: s for name, s in cluster_services().items() if s.get("image", "").startswith(kind)}


def brokers() -> dict:
    return of_image("apache/kafka")


def redis_nodes() -> dict:
    return {name: s for name, s in of_image("redis").items() if "--cluster-enabled" in command_args(s)}


def broker_properties(service: dict) -> dict[str, str]:
    """Its server.properties as the apache/kafka image writes them from KAFKA_* (`_` a dot, `__` an
    underscore, `___` a dash)."""
    def name(variable: str) -> str:
        return variable.removeprefix("KAFKA_").lower().replace("___", "-").replace("__", "\0").replace(
            "_", ".").replace("\0", "_")
    return {name(k): v for k, v in env_of(service).items() if k.startswith("KAFKA_")}


def sourced(script: str, code: str, tmp_path, **env: str) -> str:
    """Run `code` in bash after sourcing ops/services/<script>, as ops/services.sh does."""
    result = subprocess.run(["bash", "-c", f'source "$1"; {code}', "-", str(ROOT / "ops" / "services" / script)],
                            env={"PATH": os.environ["PATH"], "STATE_DIR": str(tmp_path), **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def ops_broker_properties(tmp_path) -> dict[str, str]:
    """The server.properties ops/services/kafka.sh writes for the first of three brokers."""
    brokers_env = topo.environment()["KAFKA_BROKERS"]
    render = 'mkdir -p "$(kafka_node_dir 1)" && kafka_config 1 && cat "$(kafka_node_dir 1)/server.properties"'
    text = sourced("kafka.sh", render, tmp_path, KAFKA_BROKERS=brokers_env, KAFKA_PORT=str(topo.KAFKA_PORTS[0]))
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def app_settings(name: str) -> Settings:
    return Settings(_env_file=None, **{k.lower(): v for k, v in env_of(services()[name]).items()})


def test_three_brokers_and_six_redis_nodes_as_ops_cluster_starts(tmp_path):
    assert len(brokers()) == len(topo.KAFKA_PORTS) == int(topo.environment()["KAFKA_BROKERS"]) == 3
    ops_nodes = int(sourced("redis.sh", "echo $REDIS_CLUSTER_NODES", tmp_path))
    assert len(redis_nodes()) == len(topo.REDIS_PORTS) == ops_nodes == 6


def test_every_broker_has_the_settings_ops_services_gives_three_brokers(tmp_path):
    want = {k: v for k, v in ops_broker_properties(tmp_path).items() if k not in PER_NODE}
    assert want["default.replication.factor"] == "3" and want["min.insync.replicas"] == "2"
    for name, broker in brokers().items():
        got = {k: v for k, v in broker_properties(broker).items() if k not in PER_NODE}
        assert got == want, f"{name} differs from ops/services/kafka.sh"


def test_the_brokers_form_one_quorum_and_advertise_what_the_apps_bootstrap_from():
    ids, advertised = {}, set()
    for name, broker in brokers().items():
        props, env = broker_properties(broker), env_of(broker)
        controller_port = re.search(r"CONTROLLER://[^:,]*:(\d+)", props["listeners"]).group(1)
        ids[props["node.id"]] = f"{name}:{controller_port}"
        advertised.add(re.search(r"PLAINTEXT://([^,]+)", props["advertised.listeners"]).group(1))
        assert re.search(r"PLAINTEXT://[^:,]*:(\d+)", props["listeners"]).group(1) == "9092"
        assert set(props["process.roles"].split(",")) == {"broker", "controller"}
        assert env["CLUSTER_ID"] == env_of(next(iter(brokers().values())))["CLUSTER_ID"], "one cluster id"
    voters = {broker_properties(b)["controller.quorum.voters"] for b in brokers().values()}
    assert voters == {",".join(f"{node}@{address}" for node, address in sorted(ids.items()))}
    for app in APPS:
        assert set(env_of(services()[app])["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == advertised


def test_the_topic_is_configured_as_the_cluster_tests_configure_it():
    ops = topo.settings()
    for app in APPS:
        mine = app_settings(app)
        for field in ("kafka_replication_factor", "kafka_topic_partitions", "kafka_session_timeout_ms",
                      "redis_cluster", "redis_delete_replicas"):
            assert getattr(mine, field) == getattr(ops, field), f"{app}: {field}"
    # ensure_topic gives min.insync.replicas = replicas - 1, the brokers' own default agrees.
    for broker in brokers().values():
        assert broker_properties(broker)["min.insync.replicas"] == str(ops.kafka_replication_factor - 1)
        assert int(broker_properties(broker)["group.min.session.timeout.ms"]) <= ops.kafka_session_timeout_ms


def test_the_redis_nodes_are_made_into_one_cluster_once(tmp_path):
    timeout = sourced("redis.sh", "echo $REDIS_NODE_TIMEOUT_MS", tmp_path).strip()
    replicas = re.search(r"--cluster-replicas (\d+)", (ROOT / "ops" / "services" / "redis.sh").read_text()).group(1)
    for name, node in redis_nodes().items():
        args = command_args(node)
        option = {flag: args[i + 1] for i, flag in enumerate(args[:-1]) if flag.startswith("--")}
        assert option["--cluster-node-timeout"] == timeout, name
        assert (option["--save"], option["--appendonly"]) == ("", "no"), f"{name}: a cache persists nothing"
        assert option["--cluster-announce-hostname"] == name, f"{name}: clients get its service name"
    create = cluster_services()["redis-cluster"]
    script = " ".join(command_args(create))
    assert "redis-cli --cluster create" in script and f"--cluster-replicas {replicas}" in script
    assert all(name in script for name in redis_nodes()), "the one shot names every node"
    assert str(create.get("restart")) == "no"
    assert {n: d["condition"] for n, d in create["depends_on"].items()} == {
        name: "service_healthy" for name in redis_nodes()}


def test_two_listeners_and_two_cleaners_as_ops_cluster_runs():
    per_app = {module: sum(module in p.command for p in programs().values())
               for module in ("workers.pg_listener", "workers.kafka_cleaner")}
    main_group = [args for args, extra in topo.PROGRAMS.values() if "KAFKA_CONSUMER_GROUP" not in extra]
    ops_counts = {module: sum(args == ["-m", module] for args in main_group)
                  for module in ("workers.pg_listener", "workers.kafka_cleaner")}
    assert ops_counts == {"workers.pg_listener": 2, "workers.kafka_cleaner": 2}
    assert {module: len(APPS) * count for module, count in per_app.items()} == ops_counts
    # Each cleaner's static group member id starts with its container's hostname (supervisord.conf).
    assert len({services()[app]["hostname"] for app in APPS}) == len(APPS)


def test_the_apps_use_a_database_of_their_own_and_wait_for_every_piece():
    for app in APPS:
        env, service = env_of(services()[app]), services()[app]
        assert urlsplit(env["DATABASE_URL"]).path.lstrip("/") == topo.DATABASE
        assert urlsplit(env["REDIS_URL"]).hostname in redis_nodes()
        depends = {name: d["condition"] for name, d in service["depends_on"].items()}
        assert depends == {"postgres": "service_healthy", "minio": "service_healthy",
                           **{name: "service_healthy" for name in brokers()},
                           "redis-cluster": "service_completed_successfully",
                           "cluster-seed": "service_completed_successfully"}
        for name in [n for n, condition in depends.items() if condition == "service_healthy"] + list(redis_nodes()):
            check = services()[name].get("healthcheck") or {}
            assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
    seed = cluster_services()["cluster-seed"]
    assert command_args(seed) == ["python", "-m", "ops.seed"]
    assert seed["environment"] == services()[APPS[0]]["environment"], "the seed fills the apps' database"
    assert seed["depends_on"]["cluster-db"]["condition"] == "service_completed_successfully"
    assert f"CREATE DATABASE {topo.DATABASE}" in " ".join(command_args(cluster_services()["cluster-db"]))


@pytest.mark.parametrize("app", APPS)
def test_each_app_publishes_its_own_port_to_gunicorn_s(app):
    port = app_settings(app).http_port
    published = [str(p).split(":") for p in services()[app]["ports"]]
    assert published == [[f"800{APPS.index(app) + 1}", str(port)]]
