"""The Dockerfile lints clean and builds a non-root image running supervisord on exactly the runtime requirements."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import PurePosixPath

from dockerfile_parse import DockerfileParser

from tests.containers.helpers import (DOCKERFILE, TOOLS, conf_in_image, image_env, image_files, instructions, last,
                                      option, run_commands, supervisord)


def exec_form(value: str) -> list[str]:
    return json.loads(value) if value.strip().startswith("[") else ["/bin/sh", "-c", value]


def created_users() -> dict[str, str]:
    """uid -> name of each user a RUN line creates with useradd."""
    return {option(argv, "--uid", "-u") or "": argv[-1] for argv in run_commands() if argv[:1] == ["useradd"]}


def test_hadolint_passes_on_the_dockerfile():
    result = subprocess.run([str(TOOLS / "hadolint"), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_ignores_in_the_dockerfile_give_a_reason():
    for item in (i for i in DockerfileParser(str(DOCKERFILE)).structure if i["instruction"] == "COMMENT"):
        if match := re.match(r"hadolint\s+ignore=\S+(.*)", item["value"]):
            assert match.group(1).strip(" -:"), f"hadolint ignore without a reason: {item['content'].strip()}"


def test_the_image_runs_supervisord_with_its_conf_as_a_non_root_user():
    argv = exec_form(last("ENTRYPOINT") or "[]") + exec_form(last("CMD") or "[]")
    assert PurePosixPath(argv[0]).name == "supervisord" and option(argv, "-c") == str(conf_in_image()), argv
    user = (last("USER") or "root").split(":")[0]
    assert user not in ("root", "0"), "the image runs as root"
    assert user in created_users() or user in created_users().values(), f"USER {user} is not created by useradd"
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", " ".join(value for kw, value in instructions() if kw == "ENV"))


def test_supervisords_socket_and_pid_directory_is_owned_by_the_image_user():
    conf = supervisord().configroot.supervisord
    user = last("USER").split(":")[0]
    owners = {user, created_users().get(user, user)}
    chowns = [[a for a in argv[1:] if not a.startswith("-")] for argv in run_commands() if argv[:1] == ["chown"]]
    for path in [conf.pidfile] + [server["file"] for server in conf.server_configs]:
        directory = str(PurePosixPath(path).parent)
        assert any(argv[:2] == ["mkdir", "-p"] and directory in argv for argv in run_commands()), f"no mkdir {directory}"
        assert any(args[0].split(":")[0] in owners and directory in args[1:] for args in chowns), \
            f"{directory} is not owned by USER {user}"


def test_dependencies_are_installed_in_their_own_layer_before_the_code():
    steps = [(kw, value.split()) for kw, value in instructions()]
    copy_requirements = next(i for i, (kw, words) in enumerate(steps) if kw == "COPY" and "requirements.txt" in words)
    pip = next(i for i, (kw, words) in enumerate(steps) if kw == "RUN" and {"pip", "requirements.txt"} <= set(words))
    copy_code = next(i for i, (kw, words) in enumerate(steps) if kw == "COPY" and "requirements.txt" not in words)
    assert copy_requirements < pip < copy_code, "COPY requirements.txt, RUN pip install, then COPY the code"


def test_the_image_installs_exactly_the_runtime_requirements():
    commands = [argv[argv.index("install") + 1:] for argv in run_commands() if {"pip", "install"} <= set(argv)]
    assert commands, "the Dockerfile installs no requirements"
    for words in commands:
        packages = [w for w in words if not w.startswith("-") and w != "requirements.txt"]
        assert "--no-cache-dir" in words and option(words, "-r") == "requirements.txt" and not packages, words


def test_the_image_has_the_rules_where_its_setting_points():
    """Every program refuses to start without its rules: the image copies invalidation.toml to the path its
    INVALIDATION_RULES names (compose sets the same; an operator mounts a file of their own over it)."""
    assert str(image_files().get("invalidation.toml")) == image_env()["INVALIDATION_RULES"] == "/app/invalidation.toml"
