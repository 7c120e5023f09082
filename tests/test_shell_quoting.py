"""Settings reach the ops scripts as data: hostile values (quotes, $(), spaces, %40 in the DSN) arrive
intact in the shell, in Postgres and in the S3 store, and nothing in them runs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
from minio import Minio
from minio.error import S3Error

ROOT = Path(__file__).resolve().parent.parent
# Our range for extra stacks is 15000-15999.
PG_PORT, S3_PORT = 15433, 15901


@pytest.fixture
def canary(tmp_path):
    """A file that only a value run as code would create; its path comes from the environment, since
    an S3 access key may not hold a slash."""
    path = tmp_path / "CANARY"
    yield path
    assert not path.exists(), "a setting ran as shell code"


def hostile(canary: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The settings as a user writes them (CANARY_FILE in the environment too), and what each shell
    variable must hold."""
    run = '$(touch "$CANARY_FILE")'
    user, password, database = "us@er", f"p@ss' {run} \"q\" `touch \"$CANARY_FILE\"`", f"db \"x\" {run}"
    settings = {
        "CANARY_FILE": str(canary),
        "DATABASE_URL": f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@localhost:{PG_PORT}/"
                        f"{quote(database, safe='')}",
        "S3_ENDPOINT": f"localhost:{S3_PORT}",
        "S3_ACCESS_KEY": f"ac'c{run}",
        "S3_SECRET_KEY": f"x'; touch \"$CANARY_FILE\"; ' {run} \"q\" \\ end",
    }
    expected = {"PG_USER": user, "PG_PASSWORD": password, "PG_DATABASE": database, "PG_PORT": str(PG_PORT),
                "S3_PORT": str(S3_PORT), "S3_ACCESS_KEY": settings["S3_ACCESS_KEY"],
                "S3_SECRET_KEY": settings["S3_SECRET_KEY"], "DATABASE_URL": settings["DATABASE_URL"]}
    assert "%40" in settings["DATABASE_URL"]
    return settings, expected


def test_the_exports_the_ops_scripts_eval_keep_every_value_intact(canary):
    settings, expected = hostile(canary)
    names = list(expected)
    script = 'eval "$("$0" -m citycache.settings)" && printf "%s\\0" ' + " ".join(f'"${n}"' for n in names)
    out = subprocess.run(["bash", "-c", script, sys.executable], cwd=ROOT, env={**os.environ, **settings},
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert dict(zip(names, out.split("\0"))) == expected


@pytest.mark.slow
def test_postgres_and_the_s3_store_start_with_hostile_credentials_and_take_them(canary, tmp_path):
    settings, expected = hostile(canary)
    pg_dir = Path(f"/var/lib/postgresql/city-cache-quoting-{uuid.uuid4().hex[:8]}")
    env = {**os.environ, **settings, "CITY_STATE_DIR": str(tmp_path / "state"), "PG_STATE_DIR": str(pg_dir)}

    def services(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / "ops/services.sh"), *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=180)

    try:
        started = services("start", "postgres", "s3")
        assert started.returncode == 0, started.stdout + started.stderr
        with psycopg2.connect(settings["DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute("select current_user, current_database()")
            assert cur.fetchone() == (expected["PG_USER"], expected["PG_DATABASE"])
        store = Minio(settings["S3_ENDPOINT"], access_key=settings["S3_ACCESS_KEY"],
                      secret_key=settings["S3_SECRET_KEY"], secure=False)
        store.make_bucket("quoting")
        assert [b.name for b in store.list_buckets()] == ["quoting"]
        with pytest.raises(S3Error):  # the key is checked: it was taken as given, not ignored
            Minio(settings["S3_ENDPOINT"], access_key=settings["S3_ACCESS_KEY"], secret_key="wrong",
                  secure=False).list_buckets()
    finally:
        stopped = services("stop", "postgres", "s3")
        shutil.rmtree(pg_dir, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
