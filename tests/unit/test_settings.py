"""A bad setting stops every program at start with one line that names it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = [str(Path(sys.executable).parent / "gunicorn"), "--check-config", "--config", "web/gunicorn.conf.py",
            "web:create_app()"]
PROGRAMS = {
    "pg_listener": [sys.executable, "-m", "workers.pg_listener"],
    "kafka_cleaner": [sys.executable, "-m", "workers.kafka_cleaner"],
    "consistency_sampler": [sys.executable, "-m", "workers.consistency_sampler"],
    "web": GUNICORN,
    "cli": [sys.executable, "-m", "ops.cli", "status"],
}


BAD_VALUES = [("CACHE_TTL_SECONDS", "-1"), ("WEB_WORKERS", "many"), ("LOG_LEVEL", "LOUD"), ("HTTP_PORT", "70000")]
# Checked where it is used: by the programs that write metrics (the CLI writes none).
BAD_METRICS_DIR = ("PROMETHEUS_MULTIPROC_DIR", "/proc/no-such-dir")
CASES = [(program, *bad) for program in PROGRAMS for bad in BAD_VALUES]
CASES += [(program, *BAD_METRICS_DIR) for program in PROGRAMS if program != "cli"]


@pytest.mark.parametrize("program, name, value", CASES)
def test_a_bad_value_stops_the_program_with_one_line_naming_it(program, name, value):
    result = subprocess.run(PROGRAMS[program], cwd=ROOT, env={**os.environ, name: value},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("invalid settings: ") and name in lines[0], lines[0]
