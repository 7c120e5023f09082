"""`bin/cli doctor` against the running stack: all ok, and each broken setting named in one line.

Breakage is made in the doctor's own environment (a wrong port, a wrong key), never by stopping the
services the other tests use.
"""
from __future__ import annotations

import json
import os
import subprocess

from tests.support import ROOT
from tests.integration.test_schema_command import city_rules, existing_db, schema  # noqa: F401 (fixtures)


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "cli"), "doctor", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def failures(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("FAIL")]


def test_a_healthy_stack_passes_every_check_in_text_and_json(base_url):
    result = doctor()
    assert result.returncode == 0, result.stdout + result.stderr
    assert failures(result) == []
    names = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok")}
    assert {"settings", "rules", "postgres", "rules.tables", "postgres.triggers", "kafka", "kafka.topic",
            "kafka.consumer_group", "redis", "redis.writes", "s3", "s3.bucket", "supervisord",
            "supervisord.web", "supervisord.pg_listener", "supervisord.kafka_cleaner",
            "supervisord.consistency_sampler", "web.http"} <= names
    report = json.loads(doctor("--json").stdout)
    assert report["ok"] is True and {c["name"] for c in report["checks"]} >= names
    assert all(check["ok"] and check["fix"] == "" for check in report["checks"])


def test_redis_unreachable_is_one_line_naming_redis_url(base_url):
    result = doctor(REDIS_URL="redis://localhost:16090/0")  # in this stack's spare range, nothing listens
    assert result.returncode == 1
    (line,) = failures(result)
    assert line.split()[1] == "redis" and "REDIS_URL" in line and "16090" in line, line
    report = json.loads(doctor("--json", REDIS_URL="redis://localhost:16090/0").stdout)
    assert report["ok"] is False and [c["name"] for c in report["checks"] if not c["ok"]] == ["redis"]


def test_redis_refusing_writes_is_named(base_url, redis):
    redis.config_set("min-replicas-to-write", 1)
    try:
        result = doctor()
    finally:
        redis.config_set("min-replicas-to-write", 0)
    (line,) = failures(result)
    assert line.split()[1] == "redis.writes" and "REDIS_URL must name the primary" in line, line


def test_kafka_unreachable_names_the_bootstrap_setting(base_url):
    (line,) = failures(doctor(KAFKA_BOOTSTRAP_SERVERS="localhost:16091"))
    assert line.split()[1] == "kafka" and "KAFKA_BOOTSTRAP_SERVERS" in line, line


def test_a_consumer_group_without_cleaners_names_the_program(base_url):
    (line,) = failures(doctor(KAFKA_CONSUMER_GROUP="doctor-test-nobody"))
    assert line.split()[1] == "kafka.consumer_group" and "supervisorctl start kafka_cleaner" in line, line


def test_s3_credentials_and_bucket_are_named(base_url):
    (line,) = failures(doctor(S3_SECRET_KEY="not-the-secret"))
    assert line.split()[1] == "s3" and "S3_SECRET_KEY" in line, line
    (line,) = failures(doctor(S3_BUCKET="doctor-test-no-such-bucket"))
    assert line.split()[1] == "s3.bucket" and "S3_BUCKET" in line, line


def test_a_database_without_the_triggers_says_which_command_installs_them(base_url, existing_db, city_rules):
    url, _ = existing_db
    (line,) = failures(doctor(DATABASE_URL=url))
    assert line.split()[1] == "postgres.triggers" and "bin/cli schema install" in line, line
    assert schema(url, "install").returncode == 0
    assert failures(doctor(DATABASE_URL=url)) == []


def test_postgres_unreachable_and_a_bad_setting_are_named(base_url):
    (line,) = failures(doctor(DATABASE_URL="postgresql://postgres:root@localhost:16092/tutorial"))
    assert line.split()[1] == "postgres" and "DATABASE_URL" in line, line
    result = doctor(HTTP_PORT="eighty")
    assert result.returncode == 1 and "HTTP_PORT" in failures(result)[0], result.stdout


def test_redis_cluster_setting_that_disagrees_with_the_server_is_named(base_url):
    (line,) = failures(doctor(REDIS_CLUSTER="true"))  # the stack's Redis is standalone
    assert line.split()[1] == "redis.cluster" and "REDIS_CLUSTER=false" in line, line


def test_a_bad_rule_is_a_rules_line_naming_it(base_url, tmp_path):
    bad = tmp_path / "invalidation.toml"
    bad.write_text('[[rule]]\ntable = "city"\nkeys = ["{countrycode}"]\n')
    (line,) = failures(doctor(INVALIDATION_RULES=str(bad)))
    assert line.split()[1] == "rules" and "rule 1 (table city)" in line and "literal prefix" in line, line


def test_a_rule_naming_a_table_the_database_lacks_is_named(base_url, tmp_path):
    rules = tmp_path / "invalidation.toml"
    rules.write_text((ROOT / "invalidation.toml").read_text() + '[[rule]]\ntable = "no_such_table"\nkeys = ["x_{id}"]\n')
    (line,) = failures(doctor(INVALIDATION_RULES=str(rules)))
    assert line.split()[1] == "rules.tables" and "no table no_such_table" in line, line
