"""python -m ops.cli: every command run as a subprocess against the running stack."""
import json
import os
import subprocess
import sys

import pytest

from citycache.read.cities import key as cache_key
from citycache.read.countries import key as country_key
from citycache.write.dbnames import OUTBOX
from tests.support import ROOT, start_program, stop_program, wait_until

COMMANDS = ("load", "upload-image", "invalidate", "check", "status")


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command):
    result = cli(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m ops.cli")
    if command is None:
        assert all(name in result.stdout for name in COMMANDS)


# Every row with its version (xmin): a load that rewrote rows, even with the same values, changes it.
TABLE_FINGERPRINT = ("SELECT count(*), md5(string_agg(concat_ws('|', xmin, id, name, countrycode, district, population),"
                     " ',' ORDER BY id)) FROM city")


def test_load_is_idempotent_on_a_loaded_database(base_url, db):
    """A second load changes no row and fires no trigger (checked with pg_listener stopped: every
    trigger firing would leave its outbox row waiting)."""
    with db.cursor() as cur:
        cur.execute(TABLE_FINGERPRINT)
        before = cur.fetchone()
    stop_program("pg_listener")
    try:
        outbox_before = outbox_rows(db)
        result = cli("load", "--skip-images")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "already has rows" in result.stdout
        assert outbox_rows(db) == outbox_before
    finally:
        start_program("pg_listener")
    with db.cursor() as cur:
        cur.execute(TABLE_FINGERPRINT)
        assert cur.fetchone() == before, "the rows of city changed"


def outbox_rows(db) -> int:
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {OUTBOX}")
        return cur.fetchone()[0]


def test_upload_image_then_the_api_serves_it(base_url, http, s3, settings, tmp_path):
    data = os.urandom(70_000)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    result = cli("upload-image", str(path), "--name", "test-cli-upload.png")
    try:
        assert result.returncode == 0, result.stderr
        assert "test-cli-upload.png" in result.stdout
        response = http.get(f"{base_url}/image/test-cli-upload.png")
        assert response.content == data and response.headers["Content-Type"] == "image/png"
    finally:
        s3.remove_object(settings.s3_bucket, "test-cli-upload.png")


@pytest.mark.parametrize("args, message", [(["/nonexistent/file.png"], "no such file"),
                                           (["README.md", "--name", "../x"], "image name")])
def test_upload_image_refuses_bad_input(args, message):
    result = cli("upload-image", *args)
    assert result.returncode == 2 and message in result.stderr


def test_invalidate_goes_through_kafka_to_redis(base_url, redis):
    redis.set(cache_key("QQE"), b"marker", ex=600)
    result = cli("invalidate", "qqe")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: not redis.exists(cache_key("QQE")), timeout=15, message="the key to be deleted")


def test_invalidate_direct_deletes_at_once(base_url, redis):
    redis.set(cache_key("QQE"), b"marker", ex=600)
    result = cli("invalidate", "QQE", "--direct")
    assert result.returncode == 0 and not redis.exists(cache_key("QQE"))


@pytest.mark.parametrize("bad", ["Q1", "QQA_x", "cities_a\x01b", "*nothing"])
def test_invalidate_refuses_what_no_rule_makes(bad):
    result = cli("invalidate", bad)
    assert result.returncode == 2 and "is not a cache key the rules make" in result.stderr, result.stderr


def test_invalidate_takes_any_rules_key_and_several_at_once(base_url, redis):
    for key in (cache_key("QQE"), country_key("QQE"), cache_key("QQF")):
        redis.set(key, b"marker", ex=600)
    result = cli("invalidate", country_key("QQE"), cache_key("QQF"))
    assert result.returncode == 0, result.stderr
    wait_until(lambda: not redis.exists(country_key("QQE"), cache_key("QQF")), timeout=15,
               message="both keys to be deleted")
    assert redis.exists(cache_key("QQE"))  # named neither way: kept
    redis.delete(cache_key("QQE"))


def test_check_reports_a_planted_mismatch(base_url, http, redis, test_cities):
    test_cities("QQA", ("Alpha", 1))
    http.get(f"{base_url}/cities/QQA")
    assert cli("check").returncode == 0
    redis.set(cache_key("QQA"), b'[{"name":"Alpha","population":999}]', ex=600)
    result = cli("check")
    assert result.returncode == 1 and "cities_QQA: cache" in result.stdout and "999" in result.stdout


def test_status_shows_heartbeats_backlog_and_lag(base_url):
    result = cli("status")
    assert result.returncode == 0, result.stdout + result.stderr
    for word in ("pg_listener", "kafka_cleaner", "consistency_sampler", "outbox", "consumer lag"):
        assert word in result.stdout
    state = json.loads(cli("status", "--json").stdout)
    assert state["healthy"] and state["outbox_backlog"] >= 0 and set(state["workers"]) == {"pg_listener", "kafka_cleaner",
                                                                                            "consistency_sampler"}


def test_status_exits_1_naming_a_stopped_worker(base_url):
    stop_program("kafka_cleaner")
    try:
        result = cli("status", "--json")
        assert result.returncode == 1
        assert json.loads(result.stdout)["workers"]["kafka_cleaner"]["up"] is False
    finally:
        start_program("kafka_cleaner")
