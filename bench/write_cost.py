"""6. Single-row UPDATE commits per second from 8 concurrent clients (pgbench), triggers against none.

Runs rotate over the variants. Two extra runs with synchronous_commit=off show what bounds the rate:
if they are much faster, the WAL flush at each commit is the limit, not the trigger.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from bench.common import Figure, Sizes, median, need, run, settings
from bench.tables import city_copies

CLIENTS, THREADS, ROWS = 8, 2, 50_000
SEED_RATIO_HERE = 0.57  # the seed's row trigger, as measured when the issue was written


def pgbench(script: Path, seconds: float, async_commit: bool = False) -> float:
    env = {"PGOPTIONS": "-c synchronous_commit=off"} if async_commit else {}
    out = run([need("pgbench", "postgresql-client"), "-n", "-c", str(CLIENTS), "-j", str(THREADS),
               "-T", str(max(1, round(seconds))), "-f", str(script), settings().database_url],
              timeout=seconds + 120, env=env)
    return float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))


def bench(sizes: Sizes) -> Figure:
    tps = {"none": [], "notify": [], "seed_row": [], "none_async": [], "notify_async": []}
    with city_copies("bench_write", ROWS) as tables, tempfile.TemporaryDirectory() as tmp:
        scripts = {}
        for variant, table in tables.items():
            scripts[variant] = Path(tmp) / f"{variant}.sql"
            scripts[variant].write_text(f"\\set id random(1, {ROWS})\n"
                                        f"UPDATE {table} SET population = population + 1 WHERE id = :id;\n")
        pgbench(scripts["none"], 1)  # warm-up
        for _ in range(sizes.write_rounds):
            for variant in ("none", "notify", "seed_row"):
                tps[variant].append(pgbench(scripts[variant], sizes.write_seconds))
            for variant in ("none", "notify"):
                tps[f"{variant}_async"].append(
                    pgbench(scripts[variant], sizes.write_seconds, async_commit=True))
    m = {variant: median(values) for variant, values in tps.items()}
    ratio = m["notify"] / m["none"]
    return Figure(
        6, "single-row UPDATE tps, triggers vs none (8 clients)", round(ratio, 3), "x no trigger",
        f"report (seed's row trigger: ~{SEED_RATIO_HERE})", None,
        details={"clients": CLIENTS, "seconds": sizes.write_seconds, "rounds": sizes.write_rounds,
                 "median_tps": {k: round(v, 1) for k, v in m.items()},
                 "seed_row_ratio": round(m["seed_row"] / m["none"], 3),
                 "async_commit_ratio": round(m["notify_async"] / m["none_async"], 3),
                 "fsync_bound": round(m["none_async"] / m["none"], 2), "runs_tps": tps},
        note=(f"none {m['none']:.0f}, ours {m['notify']:.0f}, seed row {m['seed_row']:.0f} tps "
              f"({m['seed_row'] / m['none']:.2f}x); with synchronous_commit=off: none {m['none_async']:.0f}, "
              f"ours {m['notify_async']:.0f} ({m['notify_async'] / m['none_async']:.2f}x)"))
