"""supervisord.conf: its programs exist, the image has all they import, they stop in time; they log to stdout in the
image and to a rotated file per program on a VM."""
from __future__ import annotations

import importlib.metadata
import shlex
import sys
from modulefinder import ModuleFinder
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from citycache.runtime import timing
from citycache.runtime.logs import access_log_path
from tests.containers.helpers import (ROOT, command_args, conf_in_image, env_of, gunicorn_config, image_env, image_files,
                                      option, programs, run_commands, services, workdir)

# Programs supervisord.conf must run (DESIGN.md, section 1).
PROGRAMS = {"web", "pg_listener", "kafka_cleaner", "consistency_sampler"}


def code_of(command: list[str]) -> ModuleFinder:
    """The repository modules a command runs, through their imports; fails if it names nothing runnable."""
    finder = ModuleFinder(path=[str(ROOT)])  # only the repository: every other import lands in badmodules
    if command[:2] == ["python", "-m"]:
        finder.import_hook(command[2])  # raises ImportError if there is no such module
        main = command[2] + ".__main__" if finder.modules[command[2]].__path__ else command[2]
        finder.import_hook(main)
        assert 'if __name__ == "__main__"' in Path(finder.modules[main].__file__).read_text(), f"{main}: not runnable"
    elif command[:1] == ["gunicorn"]:
        if config := option(command, "--config", "-c"):
            finder.run_script(str(ROOT / config))
        [app] = [arg for arg in command[1:] if ":" in arg and not arg.startswith("-")]
        module, _, attribute = app.partition(":")
        finder.import_hook(module)
        assert attribute.split("(")[0] in finder.modules[module].globalnames, f"{module} defines no {attribute}"
    else:
        pytest.fail(f"no rule to check the command {command}")
    return finder


def installed_by(requirements: Path) -> set[str]:
    """The distributions a requirements file installs on this Python, with everything they require."""
    lines = (line.split("#")[0].strip() for line in requirements.read_text().splitlines())
    todo, seen = [Requirement(line).name for line in lines if line and not line.startswith("-")], set()
    while todo:
        if (dist := canonicalize_name(todo.pop())) not in seen:
            seen.add(dist)
            todo += [r.name for r in map(Requirement, importlib.metadata.requires(dist) or [])
                     if r.marker is None or r.marker.evaluate({"extra": ""})]
    return seen


def test_supervisord_runs_the_programs_from_wherever_its_conf_is():
    assert set(programs()) == PROGRAMS
    for here in (str(conf_in_image().parent), "/srv/elsewhere"):  # in the image, and on a VM
        for name, program in programs(here).items():
            assert program.directory == here, f"{name} must run from %(here)s"


# The programs run from their directory in the image, the seed from the image's WORKDIR.
@pytest.mark.parametrize("name", sorted(PROGRAMS) + ["seed"])
def test_the_image_has_the_code_and_packages_each_program_imports(name):
    if name == "seed":
        command, cwd = command_args(services()["seed"]), workdir()
    else:
        command, cwd = shlex.split(programs()[name].command), PurePosixPath(programs()[name].directory)
    finder = code_of(command)
    local = sorted(Path(m.__file__).relative_to(ROOT).as_posix() for m in finder.modules.values() if m.__file__)
    misplaced = {rel: str(image_files().get(rel)) for rel in local if image_files().get(rel) != cwd / rel}
    assert not misplaced, f"{name} imports these from {cwd}, but the image has them elsewhere (or not): {misplaced}"
    external = {m.split(".")[0] for m in finder.badmodules} - {m.split(".")[0] for m in finder.modules}
    providers, available = importlib.metadata.packages_distributions(), installed_by(ROOT / "requirements.txt")
    missing = {top: providers.get(top) for top in sorted(external - set(sys.stdlib_module_names))
               if not {canonicalize_name(d) for d in providers.get(top, [])} & available}
    assert not missing, f"{name} imports these, but requirements.txt does not install their distributions: {missing}"


def test_supervisord_waits_longer_than_each_programs_own_graceful_stop(tmp_path):
    assert programs()["web"].stopwaitsecs > float(gunicorn_config("graceful_timeout", {}, tmp_path))
    for name in ("pg_listener", "kafka_cleaner", "consistency_sampler"):  # a stop can sit out one blocking call
        assert programs()[name].stopwaitsecs > timing.LONGEST_STOP_SECONDS, name


def test_in_the_image_every_program_logs_to_stdout_unrotated():
    """The image's ENV points each program's log file at a link to stdout, never rotated (a rotation
    would replace the link with a file): `docker logs` gets every line."""
    env = image_env()
    links = {(cmd[-1]) for cmd in run_commands() if cmd[:2] == ["ln", "-s"] and cmd[2] == "/dev/stdout"}
    for name, p in programs().items():
        assert (p.stdout_logfile_maxbytes, p.stdout_logfile_backups, p.redirect_stderr) == (0, 0, True), name
        assert p.stdout_logfile == f"{env['LOG_DIR']}/{name}.log" and p.stdout_logfile in links, \
            f"{name} logs to {p.stdout_logfile}, which the image does not link to /dev/stdout ({links})"
    # gunicorn writes its access log itself: in the image, to its stdout, which supervisord relays.
    assert access_log_path(env["LOG_DIR"]) in links, f"the access log is not linked to /dev/stdout ({links})"


def test_on_a_vm_the_same_conf_writes_a_rotated_file_per_program():
    vm = {"LOG_DIR": "/var/log/city-cache", "LOG_FILE_MAX_BYTES": "50MB", "LOG_FILE_BACKUPS": "10"}
    for name, p in programs("/opt/city-cache/app", vm).items():
        assert (p.stdout_logfile, p.stdout_logfile_maxbytes, p.stdout_logfile_backups) == (
            f"/var/log/city-cache/{name}.log", 50 * 1024 * 1024, 10), name


def test_compose_sets_the_log_settings_as_the_image_does():
    app = env_of(services()["app"])
    assert {k: app.get(k) for k in ("LOG_DIR", "LOG_FILE_MAX_BYTES", "LOG_FILE_BACKUPS")} == {
        k: image_env()[k] for k in ("LOG_DIR", "LOG_FILE_MAX_BYTES", "LOG_FILE_BACKUPS")}
