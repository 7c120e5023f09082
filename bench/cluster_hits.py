"""Figure 1 on a Redis Cluster: cache-hit throughput with REDIS_CLUSTER=true, near cache off and on.

    python -m bench.cluster_hits [--quick]   # the Redis Cluster of ops/cluster.py (17001-17006): a heavy run
    python -m bench.cluster_hits --redis-url redis://127.0.0.1:7000/0   # a cluster of your own instead

bench/hit_throughput.py's method and servers (the floor, a bare Flask app doing one GET through a
RedisCluster client, the project with its near cache off and on; the app's gunicorn config, wrk in
turn, the median of the rounds' ratios), pointed at ops/cluster.py's Redis Cluster and database instead
of the stack's Redis. Near cache off is what REDIS_CLUSTER=true gave before the near cache tracked every
primary; the target is the single Redis's: near cache on >= 0.85x the floor. Writes
artifacts/bench-cluster-hits.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench.common import ARTIFACTS, Sizes
from ops import cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_hits", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one 2 s round")
    parser.add_argument("--redis-url", help="a Redis Cluster already running, instead of starting ops/cluster.py's")
    args = parser.parse_args(argv)
    # Every process below reads the cluster's settings, with figure 1's workers (the topology runs one).
    os.environ.update(cluster.environment())
    os.environ.pop("WEB_WORKERS")
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
    from citycache.settings import get_settings
    get_settings.cache_clear()
    from bench import hit_throughput
    from bench.__main__ import commit

    stack = cluster.ClusterStack()
    if not args.redis_url:
        stack.run_services(stack.services("start", "redis"))
    try:
        stack.seed_database()
        figure = hit_throughput.bench(Sizes.quick() if args.quick else Sizes())
    finally:
        if not args.redis_url:
            stack.run_services(stack.services("stop", "redis"))
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit(),
              "mode": "quick" if args.quick else "full", "target": hit_throughput.TARGET,
              "near_on_vs_floor": figure.details["on_vs_floor"], "near_off_vs_floor": figure.details["off_vs_floor"],
              "note": figure.note, "details": figure.details}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "bench-cluster-hits.json").write_text(json.dumps(result, indent=1))
    print(f"cluster hits, {result['date']} at {result['commit']}: BGR near cache on {result['near_on_vs_floor']:.2f}x "
          f"floor (target >= {hit_throughput.TARGET}), off {result['near_off_vs_floor']:.2f}x floor\n{figure.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
