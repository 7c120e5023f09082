"""python -m bench [--quick] [--only 1,5,streaming]: run the benchmarks, write artifacts/bench.{md,json}.

Runs against the stack that is up (bin/bench starts it, as bin/test does). Every figure is a ratio
against a baseline measured in the same run, or a count, printed with its target beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback

from bench import (bulk_update, commit_to_del, deployed, hit_throughput, invalidation_rate, miss_latency, miss_storm,
                   no_poll_wait, rule_cost, sampler_cost, streaming, write_cost)
from bench.common import ARTIFACTS, ROOT, Figure, Sizes

BENCHMARKS = {
    "hit": hit_throughput, "latency": commit_to_del, "rate": invalidation_rate, "bulk": bulk_update,
    "storm": miss_storm, "writes": write_cost, "streaming": streaming, "nopoll": no_poll_wait, "rules": rule_cost,
    "deployed": deployed, "misses": miss_latency, "sampler": sampler_cost,
}


def selected(only: str | None) -> list[tuple[int, str]]:
    numbered = list(enumerate(BENCHMARKS, start=1))
    if not only:
        return numbered
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    unknown = wanted - {str(n) for n, _ in numbered} - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; choose from 1-{len(numbered)} or {', '.join(BENCHMARKS)}")
    return [(n, name) for n, name in numbered if str(n) in wanted or name in wanted]


def machine() -> str:
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                   platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, shared with other stacks"


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def render(figures: list[Figure], header: dict) -> str:
    def cell(value) -> str:
        return "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))

    lines = [f"Benchmarks: {header['date']}, {header['mode']} run, commit {header['commit']}",
             f"Machine: {header['machine']}", "",
             "| # | figure | value | target | met | detail |", "|---|---|---|---|---|---|"]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "(report)"}[f.met]
        lines.append(f"| {f.number} | {f.name} | {cell(f.value)} {f.unit} | {f.target} | {met} | {f.note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke-sized run: 100 commits, 10k-row bulk update, 10 MiB object, 2-3 s loads")
    parser.add_argument("--only", help="comma-separated numbers or names: " + ", ".join(BENCHMARKS))
    parser.add_argument("--out", default=str(ARTIFACTS), help="directory for bench.md and bench.json")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "mode": "quick" if args.quick else "full", "commit": commit(), "machine": machine(),
              "sizes": sizes.__dict__}
    figures, failed = [], False
    for number, name in selected(args.only):
        print(f"bench: {number} {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            figure = BENCHMARKS[name].bench(sizes)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed = True
            traceback.print_exc()
            figure = Figure(number, name, None, "", "", False, note=f"error: {type(exc).__name__}: {exc}"[:300])
        figure.details["elapsed_s"] = round(time.monotonic() - started, 1)
        print(f"bench: {number} {name}: {figure.value} {figure.unit} ({figure.note})", file=sys.stderr,
              flush=True)
        figures.append(figure)
    os.makedirs(args.out, exist_ok=True)
    table = render(figures, header)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump({**header, "figures": [fig.as_dict() for fig in figures]}, f, indent=1)
    print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
