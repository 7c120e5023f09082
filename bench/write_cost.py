"""6. Single-row UPDATE commits per second from 8 concurrent clients (pgbench): no capture, the seed's
row trigger, notify mode's triggers, logical mode, and the v1 triggers (a NOTIFY in every commit, as
before issue 8), in one run; in two shapes.

shared: every process shares both cores, as on a small machine: what the whole system costs.
pinned: the writers (pgbench and their backends) on one core, everything else on the other
(bench.pinning), as on a database server with a core to spare: what a writer feels.

Each round measures none, notify and the seed's trigger with the stack in notify mode, then switches
the stack's pg_listener to logical mode (bench.modes) and measures the logical copy, which the listener
decodes from the WAL meanwhile; then none, notify and logical pinned. The figure is the median of the
rounds' ratios to none, per shape.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from bench import pinning
from bench.common import Figure, Sizes, median, need, run, settings
from bench.modes import capture_mode
from bench.tables import city_copies

CLIENTS, THREADS, ROWS = 8, 2, 50_000
NOTIFY_TARGET, LOGICAL_TARGET = 0.8, 0.9


def pgbench(script: Path, seconds: float, prefix: list[str] = ()) -> float:
    out = run([*prefix, need("pgbench", "postgresql-client"), "-n", "-c", str(CLIENTS), "-j", str(THREADS),
               "-T", str(max(1, round(seconds))), "-f", str(script), settings().database_url],
              timeout=seconds + 120)
    return float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))


def pinned(script: Path, seconds: float) -> float:
    with pinning.writers_pinned() as prefix:
        return pgbench(script, seconds, prefix)


def bench(sizes: Sizes) -> Figure:
    tps = {"none": [], "notify": [], "seed_row": [], "logical": [], "v1_notify_always": []}
    pinned_tps = {"none": [], "notify": [], "logical": []}
    pin = pinning.available()
    with city_copies("bench_write", ROWS) as (tables, rules), tempfile.TemporaryDirectory() as tmp:
        scripts = {}
        for variant, table in tables.items():
            scripts[variant] = Path(tmp) / f"{variant}.sql"
            scripts[variant].write_text(f"\\set id random(1, {ROWS})\n"
                                        f"UPDATE {table} SET population = population + 1 WHERE id = :id;\n")
        pgbench(scripts["none"], 1)  # warm-up
        for round_ in range(sizes.write_rounds):
            with capture_mode("notify", rules["notify"]):
                order = ["none", "notify", "seed_row", "v1_notify_always"]
                for variant in order[round_ % 4:] + order[:round_ % 4]:
                    tps[variant].append(pgbench(scripts[variant], sizes.write_seconds))
                if pin:
                    for variant in (["none", "notify"] if round_ % 2 == 0 else ["notify", "none"]):
                        pinned_tps[variant].append(pinned(scripts[variant], sizes.write_seconds))
            with capture_mode("logical", rules["logical"]):
                tps["logical"].append(pgbench(scripts["logical"], sizes.write_seconds))
                if pin:
                    pinned_tps["logical"].append(pinned(scripts["logical"], sizes.write_seconds))
    ratios = {v: median([t / n for t, n in zip(tps[v], tps["none"])])
              for v in ("notify", "seed_row", "logical", "v1_notify_always")}
    pinned_ratios = {v: median([t / n for t, n in zip(pinned_tps[v], pinned_tps["none"])]) if pin else None
                     for v in ("notify", "logical")}
    spread = {v: (round(min(r), 2), round(max(r), 2)) for v in ("notify", "logical")
              if (r := [t / n for t, n in zip(tps[v], tps["none"])])}
    m = {variant: median(values) for variant, values in tps.items()}
    met = ratios["notify"] >= NOTIFY_TARGET and ratios["logical"] >= LOGICAL_TARGET
    pinned_note = (f"; pinned (writers on one core): notify {pinned_ratios['notify']:.2f}x, logical "
                   f"{pinned_ratios['logical']:.2f}x" if pin else "; pinned shape not run (one core)")
    return Figure(
        6, "single-row UPDATE tps vs no capture (8 clients): notify mode", round(ratios["notify"], 3),
        "x no capture", f">= {NOTIFY_TARGET} notify, >= {LOGICAL_TARGET} logical", met,
        details={"clients": CLIENTS, "seconds": sizes.write_seconds, "rounds": sizes.write_rounds,
                 "median_tps": {k: round(v, 1) for k, v in m.items()},
                 "ratios": {k: round(v, 3) for k, v in ratios.items()}, "spread": spread, "runs_tps": tps,
                 "pinned": {"ratios": {k: (round(v, 3) if v is not None else None)
                                       for k, v in pinned_ratios.items()}, "runs_tps": pinned_tps}},
        note=(f"logical {ratios['logical']:.2f}x, seed row trigger {ratios['seed_row']:.2f}x, v1 (NOTIFY in every "
              f"commit) {ratios['v1_notify_always']:.2f}x; median tps: none {m['none']:.0f}, notify {m['notify']:.0f}, "
              f"logical {m['logical']:.0f}, seed row {m['seed_row']:.0f}, v1 {m['v1_notify_always']:.0f}"
              + pinned_note))
