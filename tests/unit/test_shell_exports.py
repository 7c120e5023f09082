"""The exports the ops scripts `eval` keep every setting intact, however hostile, and run none of it."""
import os
import subprocess
import sys

from tests.hostile_settings import canary, hostile  # noqa: F401 (canary is a fixture)
from tests.support import ROOT


def test_the_exports_the_ops_scripts_eval_keep_every_value_intact(canary):
    settings, expected = hostile(canary)
    names = list(expected)
    script = 'eval "$("$0" -m citycache.settings)" && printf "%s\\0" ' + " ".join(f'"${n}"' for n in names)
    out = subprocess.run(["bash", "-c", script, sys.executable], cwd=ROOT, env={**os.environ, **settings},
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert dict(zip(names, out.split("\0"))) == expected
