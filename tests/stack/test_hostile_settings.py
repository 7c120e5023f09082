"""Postgres and the S3 store, started by ops/services.sh with hostile credentials, take them as given
and run none of them (ports 15433 and 15901)."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg2
import pytest
from minio import Minio
from minio.error import S3Error

from tests.hostile_settings import PG_PORT, canary, hostile  # noqa: F401 (canary is a fixture)
from tests.support import ROOT

pytestmark = pytest.mark.stack


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
