"""docker-compose.yml against the code: the spec, every setting wired, ports and hosts, credentials, start order."""
from __future__ import annotations

import json
import re
import subprocess
from urllib.parse import urlsplit

import pytest

from citycache.settings import Settings
from tests.containers.helpers import (COMPOSE, ROOT, TOOLS, command_args, env_of, gunicorn_config, instructions, last,
                                      programs, services, setting_names)

# Settings deliberately not set in the app's compose environment: tuning knobs whose code defaults
# fit the container. Everything else (where the services are, credentials, ports) must be set.
LEFT_TO_DEFAULT = {"KAFKA_CONSUMER_GROUP", "KAFKA_TOPIC_PARTITIONS", "CACHE_TTL_SECONDS", "WEB_WORKERS", "WEB_THREADS",
                   "LOG_LEVEL",
                   "PROMETHEUS_MULTIPROC_DIR",  # .run/metrics under the image's WORKDIR, the one writable directory
                   "REDIS_WAIT_TIMEOUT_MS",
                   "KAFKA_BROKERS",  # how many brokers ops/services.sh starts locally; compose runs its own Kafka
                   "KAFKA_GROUP_INSTANCE_ID"}  # supervisord.conf sets one per cleaner process
# Credentials must come from variables (with dev defaults), never literals in the file.
CREDENTIALS = {"app": ("S3_ACCESS_KEY", "S3_SECRET_KEY"), "minio": ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"),
               "postgres": ("POSTGRES_PASSWORD",), "cluster-app-1": ("S3_ACCESS_KEY", "S3_SECRET_KEY"),
               "cluster-db": ("PGPASSWORD",)}
# The app of the default profile and those of the profile "cluster" (tests/containers/test_compose_cluster.py).
APPS = ("app", "cluster-app-1", "cluster-app-2")
# Where in its command each backing image takes its client port from, and its default.
PORT_RULES = {"postgres": (r"(?:^|\s)(?:-p\s*|-c\s*port=)(\d+)", 5432), "redis": (r"(?:^|\s)--port[=\s]+(\d+)", 6379),
              "minio": (r"(?:^|\s)--address[=\s]+\S*:(\d+)", 9000)}


def kafka_listeners(kafka_env: dict[str, str], key: str) -> dict[str, tuple[str, int]]:
    """Listener name -> (host, port) from KAFKA_LISTENERS or KAFKA_ADVERTISED_LISTENERS."""
    return {name: (host, int(port)) for name, host, port in re.findall(r"(\w+)://([^:,]*):(\d+)", kafka_env[key])}


def listen_port(service: dict) -> int:
    """The port a backing service listens on for clients, from its own configuration."""
    kind = service.get("image", "").split(":")[0].rsplit("/", 1)[-1]
    if kind == "kafka":
        return kafka_listeners(env_of(service), "KAFKA_LISTENERS")["PLAINTEXT"][1]
    assert kind in PORT_RULES, f"no rule for the listening port of image {service.get('image')!r}"
    pattern, default = PORT_RULES[kind]
    return int(m.group(1)) if (m := re.search(pattern, " ".join(command_args(service)))) else default


def app_endpoints(app: str = "app") -> dict[str, list[tuple[str, int]]]:
    """Setting -> the (host, port) pairs it points the app at."""
    env = env_of(services()[app])
    urls = {name: [env[name]] for name in ("DATABASE_URL", "REDIS_URL")}  # URLs; the others are host:port lists
    urls |= {name: ["//" + a.strip() for a in env[name].split(",")] for name in ("S3_ENDPOINT", "KAFKA_BOOTSTRAP_SERVERS")}
    default = {"postgresql": 5432, "redis": 6379}
    return {name: [(u.hostname, u.port or default.get(u.scheme)) for u in map(urlsplit, values)]
            for name, values in urls.items()}


def test_compose_file_matches_the_compose_spec():
    result = subprocess.run([str(TOOLS / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("app", APPS)
def test_every_setting_is_set_for_the_app_or_deliberately_left_to_its_default(app):
    names, app_env = setting_names(), env_of(services()[app])
    assert LEFT_TO_DEFAULT <= names, f"not settings (stale allowlist): {sorted(LEFT_TO_DEFAULT - names)}"
    assert not LEFT_TO_DEFAULT & app_env.keys(), f"set, so not left to default: {LEFT_TO_DEFAULT & app_env.keys()}"
    assert not app_env.keys() - names, f"the app's environment sets unknown settings: {sorted(app_env.keys() - names)}"
    missing = names - app_env.keys() - LEFT_TO_DEFAULT
    assert not missing, f"settings neither set in compose's app environment nor allowlisted: {sorted(missing)}"


@pytest.mark.parametrize("app", APPS)
def test_the_app_environment_in_compose_is_valid_for_the_settings(app):
    Settings(_env_file=None, **{name.lower(): value for name, value in env_of(services()[app]).items()})


def test_every_setting_is_documented_in_env_example():
    documented = re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(encoding="utf-8"), re.MULTILINE)
    assert len(documented) == len(set(documented)), "a setting is documented twice in .env.example"
    assert set(documented) == setting_names(), (
        f"missing from .env.example: {sorted(setting_names() - set(documented))}; "
        f"not settings: {sorted(set(documented) - setting_names())}")


def test_the_seed_sees_the_same_database_and_store_as_the_app():
    app_env, seed_env = env_of(services()["app"]), env_of(services()["seed"])
    for name in ("DATABASE_URL", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET", "S3_SECURE"):
        assert seed_env.get(name) == app_env[name], f"seed's {name} differs from the app's"


def test_the_published_port_is_the_port_gunicorn_binds_and_the_image_exposes(tmp_path):
    app_env = env_of(services()["app"])
    http_port = int(app_env.get("HTTP_PORT", Settings.model_fields["http_port"].default))
    ports = [f"{p['published']}:{p['target']}" if isinstance(p, dict) else str(p) for p in services()["app"]["ports"]]
    published = [entry.split("/")[0].split(":")[-2:] for entry in ports]
    assert published == [["8000", str(http_port)]], "one port, the walkthrough's localhost:8000, to gunicorn's port"
    assert gunicorn_config("bind", app_env, tmp_path) == f"0.0.0.0:{http_port}", "bind all interfaces on HTTP_PORT"
    exposed = {int(p.split("/")[0]) for kw, value in instructions() if kw == "EXPOSE" for p in value.split()}
    assert http_port in exposed, f"the image EXPOSEs {exposed}, not {http_port}"


@pytest.mark.parametrize("app", APPS)
def test_the_app_points_at_compose_services_on_the_ports_they_listen_on(app):
    for setting, endpoints in app_endpoints(app).items():
        for host, port in endpoints:
            assert host in services(), f"{setting} names {host!r}, which is not a compose service"
            assert port == listen_port(services()[host]), f"{setting}: {host} does not listen on {port}"


def test_kafka_advertises_the_address_the_app_bootstraps_from():
    kafka_env = env_of(services()["kafka"])
    for address in app_endpoints()["KAFKA_BOOTSTRAP_SERVERS"]:
        assert kafka_listeners(kafka_env, "KAFKA_ADVERTISED_LISTENERS").get("PLAINTEXT") == address, \
            "clients reconnect to the advertised listener"
    # A single KRaft node: it is the only voter, on its controller listener, and nothing needs 3 replicas.
    voter_id, _, voter = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == kafka_env["KAFKA_NODE_ID"]
    assert int(voter.rpartition(":")[2]) == kafka_listeners(kafka_env, "KAFKA_LISTENERS")["CONTROLLER"][1]
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    for name in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                 "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert kafka_env.get(name) == "1", f"{name} must be 1 on a single node"


# With every variable unset, and with every one set (to a value derived from its name).
@pytest.mark.parametrize("variable", [lambda name: None, lambda name: f"x{name.lower()}x"], ids=["defaults", "set"])
@pytest.mark.parametrize("name", APPS)
def test_credentials_agree_between_the_app_and_its_services(variable, name):
    app, pg, minio = (env_of(services()[n], variable) for n in (name, "postgres", "minio"))
    db = urlsplit(app["DATABASE_URL"])
    assert db.username == pg.get("POSTGRES_USER", "postgres")
    assert db.password == pg["POSTGRES_PASSWORD"]
    if name == "app":  # the cluster's apps have a database of their own (test_compose_cluster.py)
        assert db.path.lstrip("/") == pg.get("POSTGRES_DB", db.username)
    else:
        assert env_of(services()["cluster-db"], variable)["PGPASSWORD"] == pg["POSTGRES_PASSWORD"]
    assert (app["S3_ACCESS_KEY"], app["S3_SECRET_KEY"]) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])


def test_no_credential_is_a_literal_in_compose():
    for service, names in CREDENTIALS.items():
        for name in names:
            value = str(services()[service]["environment"][name])
            assert re.fullmatch(r"\$\{\w+:-[^}]*\}", value), f"{service}.{name} must be ${{VAR:-dev default}}"
    password = urlsplit(services()["app"]["environment"]["DATABASE_URL"].replace("${", "{")).password
    assert password and password.startswith("{"), "the DATABASE_URL password must come from a variable"


def test_the_app_waits_for_every_healthy_backing_service_and_the_seed():
    backing = {host for endpoints in app_endpoints().values() for host, _ in endpoints}
    assert backing == {"postgres", "redis", "kafka", "minio"}
    default_profile = {name for name, service in services().items() if not service.get("profiles")}
    assert default_profile == backing | {"app", "seed"}, "a compose service the app does not use"
    depends = services()["app"].get("depends_on")
    assert isinstance(depends, dict), "depends_on needs the long form to wait for health"
    for name in backing:
        assert depends.get(name, {}).get("condition") == "service_healthy", f"app must wait for {name} to be healthy"
        check = services()[name].get("healthcheck") or {}
        assert check.get("test") not in (None, "", [], ["NONE"]) and not check.get("disable"), f"{name}: no healthcheck"
    assert depends.get("seed", {}).get("condition") == "service_completed_successfully"


def test_the_app_has_a_healthcheck_on_its_health_endpoint():
    for check in (json.dumps((services()["app"].get("healthcheck") or {}).get("test", "")), last("HEALTHCHECK") or ""):
        assert "/health" in check and "python" in check and "curl" not in check, check


def test_the_seed_runs_once_from_the_app_image_after_postgres_and_minio():
    seed, app = services()["seed"], services()["app"]
    assert seed["build"] == app["build"] == ".", "the seed runs in the image the app runs in"
    assert command_args(seed) == ["python", "-m", "ops.seed"] and (ROOT / "ops" / "seed.py").is_file()
    assert str(seed.get("restart", "no")) == "no"
    assert all(seed["depends_on"][name]["condition"] == "service_healthy" for name in ("postgres", "minio"))


def test_postgres_tracks_commit_timestamps():
    assert "track_commit_timestamp=on" in command_args(services()["postgres"])


def test_docker_gives_supervisord_time_to_stop_its_programs():
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}  # a compose duration: 40s, 1m30s, 500ms
    grace = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(services()["app"].get("stop_grace_period", "10s")))
    assert sum(float(n) * units[u] for n, u in grace) > max(p.stopwaitsecs for p in programs().values())
