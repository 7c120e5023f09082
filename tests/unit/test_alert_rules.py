"""ops/prometheus/ checked by promtool, as an operator would: the rules and the config load, every alert's unit tests
pass, every alert has a case where it fires and one where it stays quiet, a summary and a runbook naming the
commands to run, and every metric the rules read is one the code exports."""
import re
import shutil
import subprocess

import pytest
import yaml

from tests.support import ROOT

RULES_DIR = ROOT / "ops" / "prometheus"
RULES, TESTS, CONFIG = (RULES_DIR / name for name in ("city-cache.rules.yml", "city-cache.rules.test.yml",
                                                       "prometheus.yml"))
# The modules that define every metric /metrics serves.
EXPORTERS = [ROOT / "citycache" / "runtime" / "metrics.py", ROOT / "web" / "metrics.py"]
RUNBOOK_COMMANDS = ("bin/cli doctor", "bin/cli check", "bin/cli status", "bin/supervisorctl")


def promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed (ops/install.sh installs Debian's prometheus package)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules_and_the_example_config():
    for args in (("check", "rules", str(RULES)), ("check", "config", str(CONFIG))):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_runs_the_unit_tests_of_every_rule():
    result = promtool("test", "rules", str(TESTS))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alerts()])
def test_every_alert_has_a_firing_case_and_a_quiet_case(alert):
    cases = [case for test in yaml.safe_load(TESTS.read_text())["tests"] for case in test.get("alert_rule_test", [])
             if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"{alert}: no unit test where it fires"
    assert any(not case.get("exp_alerts") for case in cases), f"{alert}: no unit test where it stays quiet"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_says_what_happened_and_what_to_run(rule):
    annotations, labels = rule.get("annotations", {}), rule.get("labels", {})
    assert annotations.get("summary"), "no summary"
    assert any(command in annotations.get("runbook", "") for command in RUNBOOK_COMMANDS), \
        f"the runbook names none of {RUNBOOK_COMMANDS}"
    assert labels.get("severity") in ("critical", "warning")


def test_every_metric_the_rules_read_is_exported_by_the_code():
    exported = " ".join(path.read_text() for path in EXPORTERS)
    exprs = " ".join(rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"])
    read = {re.sub(r"_(bucket|count|sum)$", "", name) for name in re.findall(r"\bcitycache_[a-z_]+", exprs)}
    assert read, "the rules read no citycache metric"
    missing = sorted(name for name in read if f'"{name}"' not in exported)
    assert not missing, f"the rules read metrics nothing exports: {missing}"
