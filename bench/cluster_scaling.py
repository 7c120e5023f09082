"""Scaling on the 3-broker cluster: the sustained invalidation rate (figure 3's method) and the
commit-to-DEL latency (figure 2's) for 1 vs 3 partitions with 1 vs 3 cleaners.

    python -m bench.cluster_scaling [--quick]    # starts ops/cluster.py's topology (ports 17000-17999)

The topic is recreated with the partition count of each round (RF 3, min.insync.replicas 2) while
pg_listener is stopped; each round's cleaners are static members of the group. Ratios are against
the round with 1 partition and 1 cleaner, measured in the same run. Writes artifacts/bench-cluster.md
and artifacts/bench-cluster.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench.common import ARTIFACTS, Sizes, wait_for
from ops import cluster

ROUNDS = [(1, 1), (1, 3), (3, 1), (3, 3)]  # (partitions, cleaners)


def recreate_topic(partitions: int) -> None:
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, UnknownTopicOrPartitionError

    from citycache.runtime.clients import kafka_admin
    from citycache.events import TOPIC
    from citycache.settings import get_settings

    admin = kafka_admin(get_settings(), timeout_ms=10000)
    try:
        try:
            admin.delete_topics([TOPIC])
        except UnknownTopicOrPartitionError:
            pass

        def created():
            try:
                admin.create_topics([NewTopic(TOPIC, partitions, 3, topic_configs={"min.insync.replicas": "2"})])
                return True
            except KafkaError:  # still being deleted
                return False

        wait_for(created, 60, f"{TOPIC} recreated with {partitions} partitions", interval=0.5)
    finally:
        admin.close()


def stable_members(count: int) -> bool:
    from kafka import KafkaAdminClient

    from citycache.settings import get_settings

    settings = get_settings()
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","))
    try:
        group = admin.describe_groups([settings.kafka_consumer_group])[settings.kafka_consumer_group]
        return group["group_state"] == "Stable" and len(group["members"]) == count
    finally:
        admin.close()


def run(sizes: Sizes) -> list[dict]:
    from bench import commit_to_del, invalidation_rate

    stack = cluster.ClusterStack()
    stack.start(programs=("pg_listener",))
    results = []
    try:
        for partitions, cleaners in ROUNDS:
            stack.stop_program("pg_listener")
            recreate_topic(partitions)
            stack.start_program("pg_listener")
            names = [f"bench-{partitions}p-{i}" for i in range(cleaners)]
            for name in names:
                stack.start_program(name, (["-m", "workers.kafka_cleaner"], {"KAFKA_GROUP_INSTANCE_ID": name}))
            wait_for(lambda: stable_members(cleaners), 60, f"{cleaners} cleaners in a stable group", interval=0.5)
            print(f"bench-cluster: {partitions} partition(s), {cleaners} cleaner(s) ...", file=sys.stderr, flush=True)
            rate = invalidation_rate.bench(sizes)
            latency = commit_to_del.bench(sizes)
            results.append({"partitions": partitions, "cleaners": cleaners,
                            "committed_per_s": rate.details["committed_per_s"],
                            "applied_per_s": rate.details["applied_per_s"],
                            "max_lag_commits": rate.details["max_lag_commits"],
                            "drain_after_stop_s": rate.details["drain_after_stop_s"],
                            "commit_to_del_ms": latency.details["total_ms"],
                            "hops_ms": latency.details["hops_ms"], "missing": latency.details["missing"],
                            "rate_note": rate.note, "latency_note": latency.note})
            print(f"bench-cluster: {results[-1]['rate_note']} | {results[-1]['latency_note']}", file=sys.stderr)
            for name in names:
                stack.stop_program(name)
    finally:
        stack.stop()
    return results


def render(results: list[dict], header: dict) -> str:
    base = results[0]["applied_per_s"] or 1.0
    lines = [f"Cluster scaling, {header['date']} ({header['mode']}), commit {header['commit']}", "",
             "| partitions | cleaners | committed/s | applied/s | applied vs 1x1 | max lag (commits) |"
             " commit->DEL p50 / p99 | p99 vs 1x1 | hops p50 (listener, kafka, DEL) |",
             "|---|---|---|---|---|---|---|---|---|"]
    base_p99 = results[0]["commit_to_del_ms"].get("p99") or 1.0
    for r in results:
        c2d, hops = r["commit_to_del_ms"], r["hops_ms"]
        lines.append(f"| {r['partitions']} | {r['cleaners']} | {r['committed_per_s']} | {r['applied_per_s']} | "
                     f"{r['applied_per_s'] / base:.2f}x | {r['max_lag_commits']} | {c2d.get('p50')} / "
                     f"{c2d.get('p99')} ms | {(c2d.get('p99') or 0) / base_p99:.2f}x | "
                     f"{hops['commit->listener'].get('p50')}, {hops['listener->kafka'].get('p50')}, "
                     f"{hops['kafka->DEL'].get('p50')} ms |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s loads and 100 commits per round")
    args = parser.parse_args(argv)
    # Every client below (and the benchmarks' own) reads the cluster's settings.
    os.environ.update(cluster.environment())
    from citycache.settings import get_settings
    get_settings.cache_clear()
    sizes = Sizes.quick() if args.quick else Sizes(rate_seconds=10.0, commits=500)
    from bench.__main__ import commit
    header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "mode": "quick" if args.quick else "full",
              "commit": commit()}
    results = run(sizes)
    ARTIFACTS.mkdir(exist_ok=True)
    table = render(results, header)
    (ARTIFACTS / "bench-cluster.md").write_text(table)
    (ARTIFACTS / "bench-cluster.json").write_text(json.dumps({**header, "rounds": results}, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
