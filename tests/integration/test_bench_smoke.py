"""The benchmark command in its quick mode produces all twelve figures with sane values.

No speed is asserted (timed asserts are forbidden on this shared machine): only that every
benchmark ran, measured what it says, and wrote the table and the JSON.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory, base_url):
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (out / "bench.md").read_text()
    data = json.loads((out / "bench.json").read_text())
    return table, {f["number"]: f for f in data["figures"]}, data


def test_all_twelve_figures_with_targets(results):
    table, figures, data = results
    assert sorted(figures) == list(range(1, 13))
    for number, figure in figures.items():
        assert figure["value"] is not None, figure
        assert figure["target"], figure
        assert f"| {number} | {figure['name']} |" in table
    assert data["mode"] == "quick" and data["machine"]


def test_ratios_are_positive_numbers(results):
    _, figures, _ = results
    assert figures[1]["value"] > 0 and figures[1]["details"]["floor_rps"] > 0
    for mode in ("notify", "logical"):  # figures 2 and 3 run in both capture modes
        assert figures[3]["details"][mode]["committed_per_s"] > 0
    assert figures[3]["value"] > 0
    for number in (4, 6):  # every variant measured, logical mode's included
        assert figures[number]["value"] > 0
        assert all(ratio > 0 for ratio in figures[number]["details"]["ratios"].values())
        assert {"seed_row", "logical", "notify"} <= set(figures[number]["details"]["ratios"])
    assert figures[7]["details"]["throughput_ratio"] > 0
    assert figures[10]["value"] > 0 and min(figures[10]["details"]["rps"].values()) > 0  # deployed and its floor


def test_every_commit_reached_redis(results):
    _, figures, _ = results
    for mode in ("notify", "logical"):
        latency = figures[2]["details"][mode]
        assert latency["commits"] == 100 and latency["missing"] == 0
        assert 0 < latency["total_ms"]["p50"] <= latency["total_ms"]["p99"] <= latency["total_ms"]["max"]
        assert set(latency["hops_ms"]) == {"commit->listener", "listener->kafka", "kafka->DEL"}
        country = latency["country_key"]  # city's second key, deleted by the same commits
        assert country["commits"] == 100 and country["missing"] == 0 and country["total_ms"]["p99"] > 0
        assert latency["capital_rename_to_fresh_ms"]["p50"] > 0
        assert figures[3]["details"][mode]["drain_after_stop_s"] is not None  # the backlog drained
        slowest = figures[8]["details"]["modes"][mode]
        assert slowest["commits"] > 0 and slowest["max_ms"] is not None and slowest["max_to_publish_ms"] is not None


def test_miss_storm_ran_exactly_one_query(results):
    _, figures, _ = results
    storm = figures[5]["details"]
    assert storm["queries_per_round"] == [1] * storm["rounds"]
    assert storm["statuses"] == {"200": storm["requests_per_storm"] * storm["rounds"]}
    assert storm["latency_ms"]["p99"] > 0


def test_misses_were_timed_and_their_sessions_counted(results):
    _, figures, _ = results
    misses = figures[11]["details"]
    assert 0 < misses["latency_ms"]["p50"] <= misses["latency_ms"]["p99"]
    assert set(misses["sessions_opened"]) == {"200 misses", "20 /health", "20 /metrics"} and misses["pool_size"] > 0


def test_streaming_measured_the_worker(results):
    _, figures, _ = results
    stream = figures[7]["details"]
    assert stream["bytes"] == 10 << 20
    assert figures[7]["value"] >= 0 and all(v > 0 for v in stream["app_mib_s"] + stream["direct_mib_s"])


def test_a_rule_writes_its_distinct_values_not_rows_times_keys(results):
    _, figures, _ = results
    rules = figures[9]["details"]
    assert rules["outbox_rows_per_statement"] == rules["distinct_codes"] > 1
    assert rules["outbox_rows_per_statement"] < rules["rows_times_keys"]
    assert all(ratio > 0 for ratio in [*rules["countrylanguage_ratio"].values(), *rules["bulk_10k_ratio"].values()])


def test_the_samplers_cost_was_measured_on_and_off_and_it_runs_again(results):
    _, figures, _ = results
    cost = figures[12]["details"]
    assert len(cost["runs"]["hits_on"]) == len(cost["runs"]["hits_off"]) == cost["rounds"] >= 1
    assert all(value > 0 for values in cost["runs"].values() for value in values)
    assert cost["hits_on_vs_off"] > 0 and cost["commits_on_vs_off"] > 0 and cost["cached_codes"] > 200
    status = subprocess.run([sys.executable.replace("/python", "/supervisorctl"), "-c", str(ROOT / "supervisord.conf"),
                             "status", "consistency_sampler"], capture_output=True, text=True, timeout=60).stdout
    assert "RUNNING" in status, status
