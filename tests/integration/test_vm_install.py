"""ops/vm-install.sh into a temporary prefix, against the test stack's services, run as its unit says.

systemd is not PID 1 here, so the unit is checked with `systemd-analyze verify` and then executed the
way systemd would: its User, EnvironmentFile, Environment, WorkingDirectory and ExecStart, and
nothing else from this process's environment.
"""
from __future__ import annotations

import configparser
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from tests.support import ROOT, wait_until

USER = "nobody"  # exists everywhere and owns nothing: the install must make its own dirs writable
HTTP_PORT = 16000  # this worktree's spare range


def install(prefix: Path, settings) -> subprocess.CompletedProcess:
    # Only what an operator would pass: where the existing services are, and the port.
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "S3_ENDPOINT": settings.s3_endpoint,
           "HTTP_PORT": str(HTTP_PORT),
           # Its own group: joining the stack's would rebalance the stack's cleaner under other tests.
           "KAFKA_CONSUMER_GROUP": "vm-install-test"}
    return subprocess.run([str(ROOT / "ops" / "vm-install.sh"), "--prefix", str(prefix), "--user", USER],
                          env=env, capture_output=True, text=True, timeout=600)


def unit_service(unit: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(unit)
    return parser["Service"]


def env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def start_like_systemd(unit: Path) -> subprocess.Popen:
    service = unit_service(unit)
    env = env_file(Path(service["EnvironmentFile"]))
    env.update(dict(pair.split("=", 1) for pair in shlex.split(service["Environment"])))
    return subprocess.Popen(shlex.split(service["ExecStart"]), cwd=service["WorkingDirectory"], env=env,
                            user=service["User"], group=service["Group"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink() and "venv" not in p.parts}


@pytest.fixture(scope="module")
def installed(settings):
    prefix = Path(tempfile.mkdtemp(prefix="city-cache-vm-"))
    prefix.chmod(0o755)  # USER must reach the files below it
    first = install(prefix, settings)
    assert first.returncode == 0, first.stdout + first.stderr
    try:
        yield prefix, first
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@pytest.fixture(scope="module")
def running(installed):
    prefix, _ = installed
    supervisord = start_like_systemd(prefix / "etc/systemd/system/city-cache.service")
    url = f"http://127.0.0.1:{HTTP_PORT}"

    def healthy():
        try:
            return requests.get(f"{url}/health", timeout=5).status_code == 200
        except requests.ConnectionError:
            assert supervisord.poll() is None, "the installed supervisord exited"
            return False

    try:
        wait_until(healthy, timeout=90, message=f"the installed app at {url}/health", interval=0.5)
        # web answers before supervisord counts it RUNNING (startsecs): wait for all four.
        wait_until(lambda: ctl(prefix, "status").stdout.count("RUNNING") == 4, timeout=30,
                   message="the installed programs RUNNING", interval=0.2)
        yield prefix, url, supervisord
    finally:
        supervisord.send_signal(signal.SIGTERM)  # what systemctl stop does (KillMode=mixed)
        supervisord.wait(timeout=60)


def ctl(prefix: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(prefix / "opt/city-cache/bin/supervisorctl"), *args], capture_output=True,
                          text=True, timeout=60)


def test_a_second_install_changes_nothing_and_says_so(installed, settings):
    prefix, first = installed
    assert "venv installed" in first.stdout and "unit written" in first.stdout
    before = digest(prefix)
    again = install(prefix, settings)
    assert again.returncode == 0, again.stderr
    assert [l for l in again.stdout.splitlines() if l.startswith("vm-install:") and "unchanged" not in l] == \
        ["vm-install: done. Next, as root:"], again.stdout
    assert digest(prefix) == before


def test_the_env_file_points_at_the_existing_services_and_the_prefix(installed, settings):
    prefix, _ = installed
    env = env_file(prefix / "etc/city-cache/city-cache.env")
    assert env["DATABASE_URL"] == settings.database_url and env["REDIS_URL"] == settings.redis_url
    assert env["HTTP_PORT"] == str(HTTP_PORT)
    assert env["LOG_DIR"] == str(prefix / "var/log/city-cache")
    assert oct((prefix / "etc/city-cache/city-cache.env").stat().st_mode & 0o777) == "0o640"  # it holds secrets


def test_the_unit_passes_systemd_analyze_verify(installed):
    prefix, _ = installed
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (Debian: systemd)")
    result = subprocess.run(["systemd-analyze", "verify", str(prefix / "etc/systemd/system/city-cache.service")],
                            capture_output=True, text=True, timeout=60)
    # The test installs for `nobody`, which systemd rightly warns about; nothing else may be said.
    complaints = [l for l in result.stderr.splitlines() if "Special user nobody" not in l]
    assert result.returncode == 0 and not complaints, result.stderr


def test_the_unit_runs_supervisord_as_the_user_and_stops_it_gracefully(installed):
    prefix, _ = installed
    service = unit_service(prefix / "etc/systemd/system/city-cache.service")
    assert service["User"] == USER
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "supervisord" and argv[-1] == str(prefix / "opt/city-cache/app/supervisord.conf")
    assert service["KillMode"] == "mixed"  # SIGTERM to supervisord alone: it stops each program in turn
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(prefix / "opt/city-cache/app/supervisord.conf")
    longest = max(float(conf[s].get("stopwaitsecs", 10)) for s in conf.sections() if s.startswith("program:"))
    assert float(service["TimeoutStopSec"]) > longest
    assert "signal HUP web" in service["ExecReload"]


def test_the_installed_app_serves_and_runs_as_the_user(running, http):
    prefix, url, supervisord = running
    response = http.get(f"{url}/cities/BGR", timeout=10)
    assert response.status_code == 200 and response.json()["data"]
    for pid in [supervisord.pid] + [int(p) for p in Path(f"/proc/{supervisord.pid}/task/{supervisord.pid}/children")
                                                    .read_text().split()]:
        uid = int(next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("Uid:")).split()[1])
        assert uid == int(subprocess.check_output(["id", "-u", USER])), pid
    assert "RUNNING" in ctl(prefix, "status", "pg_listener").stdout
    assert "RUNNING" in ctl(prefix, "status", "kafka_cleaner").stdout
    assert "RUNNING" in ctl(prefix, "status", "consistency_sampler").stdout


def test_the_installed_logs_are_files_supervisorctl_tail_and_cli_logs_read(running, http):
    prefix, url, _ = running
    assert '"component": "web"' in ctl(prefix, "tail", "-20000", "web").stdout  # the API's own lines
    request_id = f"vm-{uuid.uuid4().hex[:12]}"
    http.get(f"{url}/health", headers={"X-Request-ID": request_id}, timeout=10)
    logs = [str(prefix / "opt/city-cache/bin/cli"), "logs", "access", "-n", "1000"]
    wait_until(lambda: request_id in subprocess.run(logs, capture_output=True, text=True, timeout=60).stdout,
               timeout=10, message="the request id in the installed API's access log (bin/cli logs)")
    assert request_id in (prefix / "var/log/city-cache/access.log").read_text()


def test_logrotate_moves_the_access_log_and_gunicorn_reopens_it(running, http, tmp_path):
    """What Debian's daily logrotate run does with the installed file (-f: as if past LOG_FILE_MAX_BYTES)."""
    prefix, url, _ = running
    if shutil.which("logrotate") is None:
        pytest.fail("logrotate is not installed (Debian: logrotate; ops/install.sh installs it)")
    access = prefix / "var/log/city-cache/access.log"
    rotated = access.with_name("access.log.1")

    def logged(request_id: str) -> bool:
        http.get(f"{url}/health/live", headers={"X-Request-ID": request_id}, timeout=10)
        return access.exists() and request_id in access.read_text()

    before = f"vm-before-{uuid.uuid4().hex[:12]}"
    wait_until(lambda: logged(before), timeout=10, message="a request in the installed access.log")
    done = subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"), str(prefix / "etc/logrotate.d/city-cache")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert before in rotated.read_text()
    after = f"vm-after-{uuid.uuid4().hex[:12]}"
    wait_until(lambda: logged(after), timeout=15, message="a request in the new access.log after the rotation",
               interval=0.2)
    assert after not in rotated.read_text()


def test_the_installed_doctor_finds_everything_healthy(running):
    prefix, _, _ = running
    result = subprocess.run([str(prefix / "opt/city-cache/bin/cli"), "doctor"], capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "group vm-install-test: Stable, 1 member(s)" in result.stdout
    assert f"http://127.0.0.1:{HTTP_PORT}/health answers 200" in result.stdout
