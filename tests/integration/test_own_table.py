"""The README's "Cache your own table", done as an operator does it, on the running stack: a table the
project does not ship, its rule written into the rules file, `bin/cli schema install`, `bin/supervisorctl
restart all`; then its keys are deleted for INSERT, UPDATE, a move, DELETE and TRUNCATE, in both capture
modes. And a bad rule in the same file: every program refuses it with one line, FATAL, nothing started.

The stack's own invalidation.toml is edited in place (that is the operator's step) and put back after,
with the two steps again, so the tests after these find the stack as it was.
"""
from __future__ import annotations

import os
import subprocess
import sys

import psycopg2
import pytest

from tests.listeners import OwnListeners
from tests.support import ROOT, program_state, supervisorctl, wait_until

RULES = ROOT / "invalidation.toml"
TABLE = """
CREATE TABLE IF NOT EXISTS test_shop (
    id      integer PRIMARY KEY,
    city_id integer NOT NULL,
    name    text    NOT NULL
)"""
SHOP_RULE = """
[[rule]]
table = "test_shop"
keys = ["shop_{id}", "shops_in_{city_id}"]
"""
PROGRAMS = ("web", "pg_listener", "kafka_cleaner", "consistency_sampler")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "cli"), *args], capture_output=True, text=True, timeout=120)


def restart_all() -> subprocess.CompletedProcess:
    return supervisorctl("restart", "all", check=False)


def running() -> bool:
    return all(program_state(program) == "RUNNING" for program in PROGRAMS)


@pytest.fixture(scope="module")
def shipped_rules():
    """The rules file as shipped; written back, installed and restarted after the module."""
    text = RULES.read_text()
    yield text
    RULES.write_text(text)
    assert cli("schema", "install").returncode == 0
    restart_all()
    wait_until(running, timeout=60, message="the programs to run again on the shipped rules")


@pytest.fixture(scope="module")
def shop(shipped_rules, settings, base_url):
    """The three steps, once: the rule, schema install, restart all."""
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(TABLE)
    RULES.write_text(shipped_rules + SHOP_RULE)  # 1. write its rule
    installed = cli("schema", "install")  # 2. notify mode's triggers for it
    assert installed.returncode == 0, installed.stderr
    assert "created: trigger citycache_invalidate_insert_v3 on test_shop" in installed.stdout, installed.stdout
    restarted = restart_all()  # 3. every program reads the rules anew
    assert restarted.returncode == 0, restarted.stdout
    wait_until(running, timeout=60, message="the programs to run with the shop's rule")
    yield conn
    RULES.write_text(shipped_rules)
    removed = cli("schema", "install")
    assert "removed: trigger citycache_invalidate_insert_v3 on test_shop" in removed.stdout, removed.stdout
    with conn.cursor() as cur:
        cur.execute("DROP TABLE test_shop")
    conn.close()


@pytest.fixture(params=["notify", "logical"])
def mode(request, shop, settings, tmp_path):
    """notify: the supervised pg_listener. logical: one of the test's own, with the same rules file."""
    if request.param == "notify":
        yield "notify"
        return
    with OwnListeners(tmp_path, settings.database_url) as own:
        listener = own.start(CAPTURE_MODE="logical")
        wait_until(lambda: '"msg": "streaming"' in listener.log_path.read_text(errors="replace"), timeout=30,
                   message="the logical listener to stream")
        yield "logical"


def deleted(redis, keys, write):
    """Plant a marker under each key, make the write, await every marker's deletion."""
    for key in keys:
        redis.set(key, b"marker: an app's cached value", ex=600)
    write()
    wait_until(lambda: not redis.exists(*keys), timeout=15, message=f"the deletion of {', '.join(keys)}")


def test_its_keys_are_deleted_for_every_kind_of_write(shop, mode, redis):
    def sql(statement: str):
        def run():
            with shop.cursor() as cur:
                cur.execute(statement)
        return run

    deleted(redis, ["shop_1", "shops_in_7"], sql("INSERT INTO test_shop VALUES (1, 7, 'Books')"))
    deleted(redis, ["shop_1", "shops_in_7"], sql("UPDATE test_shop SET name = 'Old books' WHERE id = 1"))
    # A move: the old city's list and the new one's.
    deleted(redis, ["shop_1", "shops_in_7", "shops_in_8"], sql("UPDATE test_shop SET city_id = 8 WHERE id = 1"))
    deleted(redis, ["shop_1", "shops_in_8"], sql("DELETE FROM test_shop WHERE id = 1"))
    redis.set("shops_elsewhere", b"no rule's prefix", ex=600)
    try:
        # TRUNCATE: every key under the rule's prefixes, also of rows that never existed.
        deleted(redis, ["shop_999", "shops_in_999"], sql("TRUNCATE test_shop"))
        assert redis.exists("shops_elsewhere")
    finally:
        redis.delete("shops_elsewhere")


def test_a_table_outside_the_rules_deletes_nothing(shop, redis, settings, base_url):
    with shop.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS test_not_a_rule (id integer PRIMARY KEY, city_id integer)")
    try:
        redis.set("shop_5", b"marker", ex=600)
        with shop.cursor() as cur:  # its own marker after, to know the pipeline went past this write
            cur.execute("INSERT INTO test_not_a_rule VALUES (5, 5)")
        deleted(redis, ["shop_6"], lambda: shop.cursor().execute("INSERT INTO test_shop VALUES (6, 6, 'x')"))
        assert redis.exists("shop_5")
    finally:
        redis.delete("shop_5")
        with shop.cursor() as cur:
            cur.execute("DROP TABLE test_not_a_rule; DELETE FROM test_shop")


BAD_RULES = {
    "a table that does not exist": ('[[rule]]\ntable = "no_such_table"\nkeys = ["x_{id}"]\n',
                                    "rule 4 (table no_such_table): the database (DATABASE_URL) has no table no_such_table"),
    "a column that does not exist": ('[[rule]]\ntable = "test_shop"\nkeys = ["shop_{shop_id}"]\n',
                                     "rule 4 (table test_shop): key 'shop_{shop_id}' names {shop_id}"),
    "a template without a literal prefix": ('[[rule]]\ntable = "test_shop"\nkeys = ["{id}"]\n',
                                            "rule 4 (table test_shop): key '{id}': it must start with a literal prefix"),
    "an empty key list": ('[[rule]]\ntable = "test_shop"\nkeys = []\n', "rule 4 (table test_shop): keys is empty"),
    "a file that is not TOML": ('[[rule]\ntable = "test_shop"\n', "is not valid TOML"),
}
PROGRAM_COMMANDS = {
    "pg_listener": [sys.executable, "-m", "workers.pg_listener"],
    "kafka_cleaner": [sys.executable, "-m", "workers.kafka_cleaner"],
    "consistency_sampler": [sys.executable, "-m", "workers.consistency_sampler"],
    "web": [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "--config", "web/gunicorn.conf.py",
            "--bind", "127.0.0.1:18556", "web:create_app()"],
}


@pytest.mark.parametrize("bad", BAD_RULES, ids=lambda name: name.replace(" ", "-"))
@pytest.mark.parametrize("program", PROGRAM_COMMANDS)
def test_each_program_refuses_a_bad_rule_with_one_line(shop, shipped_rules, tmp_path, bad, program):
    rules, says = bad_file(tmp_path, shipped_rules, bad)
    done = subprocess.run(PROGRAM_COMMANDS[program], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "INVALIDATION_RULES": str(rules)})
    assert done.returncode == 78, done.stdout[-500:] + done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rules: {rules}") and says in lines[0], done.stderr


def bad_file(tmp_path, shipped_rules, bad: str):
    text, says = BAD_RULES[bad]
    rules = tmp_path / "invalidation.toml"
    rules.write_text(shipped_rules + text if "TOML" not in bad else text)
    return rules, says


@pytest.mark.parametrize("bad", BAD_RULES, ids=lambda name: name.replace(" ", "-"))
def test_doctor_and_schema_install_name_a_bad_rule(shop, shipped_rules, tmp_path, bad):
    rules, says = bad_file(tmp_path, shipped_rules, bad)
    env = {**os.environ, "INVALIDATION_RULES": str(rules)}
    doctor = subprocess.run([str(ROOT / "bin" / "cli"), "doctor"], capture_output=True, text=True, timeout=120, env=env)
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert doctor.returncode == 1 and len(failed) == 1 and failed[0].split()[1] in ("rules", "rules.tables") \
        and says in failed[0], doctor.stdout
    install = subprocess.run([str(ROOT / "bin" / "cli"), "schema", "install", "--dry-run"], capture_output=True,
                             text=True, timeout=60, env=env)
    assert install.returncode == 2 and says in install.stderr and not install.stdout, install.stdout + install.stderr


def test_a_bad_rule_under_supervisord_is_fatal_for_every_program_and_the_fix_brings_them_back(shop, shipped_rules,
                                                                                        settings):
    text, says = BAD_RULES["a column that does not exist"]
    RULES.write_text(shipped_rules + text)
    try:
        restart_all()  # returns once each program is RUNNING or has given up
        wait_until(lambda: all(program_state(program) == "FATAL" for program in PROGRAMS), timeout=90,
                   message="every program to be FATAL (not restarting)", interval=0.5)
        for program in PROGRAMS:
            log = (ROOT / settings.log_dir / f"{program}.log").read_text(errors="replace")
            assert says in log.splitlines()[-1], f"{program}: {log.splitlines()[-3:]}"
        assert cli("schema", "install").returncode == 2  # refused too: nothing half-installed
    finally:
        RULES.write_text(shipped_rules + SHOP_RULE)
        supervisorctl("start", "all", check=False)
    wait_until(running, timeout=60, message="every program to start again with the rule fixed")
