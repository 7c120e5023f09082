"""What each command installs, as the commands themselves say under CITY_CACHE_INSTALL=plan (ops/install.sh's
lists): bin/run only what running needs; bin/test and bin/bench their tools on top."""
import os
import subprocess

import pytest

from tests.support import ROOT

RUNNING = {"postgresql-15", "redis-server", "openjdk-17-jre-headless", "maven", "python3-venv"}


def plan(command: str) -> dict[str, str]:
    """The plan the command prints ('debian', 'python', ...), having installed and started nothing."""
    done = subprocess.run([str(ROOT / command)], cwd=ROOT, env={**os.environ, "CITY_CACHE_INSTALL": "plan"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"install: {command} installs", done.stdout
    assert all(line.startswith("  ") for line in lines[1:]), done.stdout  # nothing else ran
    return dict(line.strip().split(": ", 1) for line in lines[1:])


@pytest.fixture(scope="module")
def plans():
    return {command: plan(command) for command in ("bin/run", "bin/test", "bin/bench")}


def debs(plans, command: str) -> set[str]:
    return set(plans[command]["debian"].split())


def test_bin_run_installs_the_services_and_the_runtime_venv_and_no_test_or_benchmark_tool(plans):
    assert RUNNING <= debs(plans, "bin/run")
    assert not {"chromium", "wrk", "libjpeg-turbo-progs", "prometheus", "logrotate"} & debs(plans, "bin/run")
    assert plans["bin/run"]["python"].startswith("requirements.txt ")


def test_bin_test_adds_its_tools_and_the_dev_requirements(plans):
    assert debs(plans, "bin/test") - debs(plans, "bin/run") == {"chromium", "wrk", "libjpeg-turbo-progs", "prometheus", "logrotate"}
    assert plans["bin/test"]["python"].startswith("requirements-dev.txt ")


def test_bin_bench_adds_wrk_and_no_browser(plans):
    assert debs(plans, "bin/bench") - debs(plans, "bin/run") == {"wrk"}
    assert plans["bin/bench"]["python"].startswith("requirements-dev.txt ")


def test_the_dev_requirements_hold_the_runtime_ones():
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in dev
