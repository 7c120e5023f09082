"""Importing the programs' modules does nothing: no folder, no environment change, no exit."""
import json
import os
import subprocess
import sys

from tests.support import ROOT

MODULES = ["citycache.runtime.metrics", "workers.pg_listener", "workers.kafka_cleaner",
           "workers.consistency_sampler", "web", "web.metrics",
           "web.resources", "ops.cli", "citycache.pipeline"]
PROBE = f"""
import json, os, sys
before = dict(os.environ)
for name in {MODULES!r}:
    __import__(name)
print(json.dumps({{"env_changed": sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)),
                  "prometheus_imported": "prometheus_client.values" in sys.modules}}))
"""


def test_importing_every_program_module_has_no_side_effect(tmp_path):
    sample_dir = tmp_path / "metrics-not-made"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(sample_dir), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert not sample_dir.exists(), "an import created the metrics directory"
    assert seen["env_changed"] == []
    assert list(tmp_path.iterdir()) == [], "an import wrote into the working directory"


def test_setup_makes_the_directory_and_points_prometheus_at_it(tmp_path):
    """The explicit step each program takes first: after it, samples go to files in the directory."""
    sample_dir = tmp_path / "samples"
    code = (
        "from citycache.runtime import metrics\n"
        "from citycache.settings import get_settings\n"
        "metrics.setup(get_settings())\n"
        "metrics.PUBLISHED.inc()\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(sample_dir), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert [p.name.split("_")[0] for p in sample_dir.glob("*.db")] == ["counter"]


def test_setup_after_prometheus_was_imported_refuses(tmp_path):
    """Samples kept in memory would vanish from /metrics unseen: such a start fails loudly instead."""
    code = ("import os; os.environ.pop('PROMETHEUS_MULTIPROC_DIR', None)\n"
            "import prometheus_client\n"
            "from citycache.runtime import metrics\n"
            "from citycache.settings import get_settings\n"
            "metrics.setup(get_settings())\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "imported before metrics.setup()" in result.stderr


def test_the_layers_import_only_downwards():
    """citycache/ never imports the programs; runtime/ neither flow; the read path nothing of the write path."""
    import ast

    forbidden = {"citycache": ("web", "workers", "ops", "bench", "tests"),
                 "citycache/runtime": ("citycache.read", "citycache.write"),
                 "citycache/read": ("citycache.write",)}
    found = []
    for folder, banned in forbidden.items():
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                found += [f"{path.relative_to(ROOT)} imports {name}" for name in names
                          if any(name == b or name.startswith(b + ".") for b in banned)]
    assert found == []
