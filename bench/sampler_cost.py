"""12. What the consistency sampler costs: cache-hit throughput (figure 1's shape) and single-row commits (figure
6's shape), with the stack's sampler running and stopped, in one run.

Hits: wrk on GET /cities/BGR against a gunicorn of the benchmark's own with the app's config and its near cache
on (figure 1's "on"), on the stack's Redis and database. Commits: pgbench -c 8 of single-row UPDATEs of the
benchmark's own rows of `city` (codes QZA..QZZ), through the stack's own triggers and pipeline, so that every
commit ends in DELs the sampler hears on its tracking connection. The cities and countries of every code are
cached first, so the sampler has keys to compare at its full rate (SAMPLER_RATE). Each round measures both with
the sampler on and off (the order alternating); the figure is the median of the rounds' on/off ratios, beside
the noise: how far the off runs alone spread around their median.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import requests

from bench.common import Figure, Sizes, base_url, median, pg_conn, program
from bench.hit_throughput import APPS, CODE, Server, hit_body, wrk
from bench.rows import bench_countries, bench_rows
from bench.write_cost import pgbench

PROGRAM = "consistency_sampler"


def cache_everything(codes: list[str]) -> None:
    with requests.Session() as http:
        for code in codes:
            http.get(f"{base_url()}/cities/{code}", timeout=30)
            http.get(f"{base_url()}/countries/{code}", timeout=30)


def spread(values: list[float]) -> float:
    """How far the runs spread around their median, as a share of it."""
    middle = median(values)
    return max(abs(v - middle) for v in values) / middle


def bench(sizes: Sizes) -> Figure:
    with pg_conn() as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT countrycode FROM city ORDER BY 1")
        codes = [row[0].strip() for row in cur.fetchall()]
    runs = {"hits_on": [], "hits_off": [], "commits_on": [], "commits_off": []}
    with bench_rows() as rows, bench_countries(rows), tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "update.sql"
        ids = ",".join(str(i) for i in sorted(rows))
        script.write_text(f"\\set i random(1, {len(rows)})\n"
                          f"UPDATE city SET population = population + 1 WHERE id = (ARRAY[{ids}])[:i];\n")
        floor_file = Path(tmp) / "unused"
        server = Server("sampler-near_on", *APPS["near_on"], floor_file, Path(tmp))
        try:
            server.wait_up()
            body = hit_body(CODE, server.url(CODE))
            server.wait_serving(CODE, body)
            cache_everything(codes)
            wrk(server.url(CODE), 1)  # warm-up
            pgbench(script, 1)
            for round_ in range(sizes.write_rounds):
                for on in ((True, False) if round_ % 2 == 0 else (False, True)):
                    program(PROGRAM, on)
                    cache_everything(codes[round_::sizes.write_rounds])  # what the writes and TTLs took, back
                    state = "on" if on else "off"
                    runs[f"hits_{state}"].append(wrk(server.url(CODE), sizes.hit_seconds)["rps"])
                    runs[f"commits_{state}"].append(pgbench(script, sizes.write_seconds))
        finally:
            server.stop()
            program(PROGRAM, True)
    hits = round(median([a / b for a, b in zip(runs["hits_on"], runs["hits_off"])]), 3)
    commits = round(median([a / b for a, b in zip(runs["commits_on"], runs["commits_off"])]), 3)
    noise = {"hits": round(spread(runs["hits_off"]), 3), "commits": round(spread(runs["commits_off"]), 3)}
    met = abs(1 - hits) <= max(noise["hits"], 0.03) and abs(1 - commits) <= max(noise["commits"], 0.03)
    return Figure(
        12, "consistency sampler on vs off: cache hits (figure 1), single-row commits (figure 6)", hits,
        "x hits off", "within the noise of the rounds (the off runs' spread, at least 3 %)", met,
        details={"hits_on_vs_off": hits, "commits_on_vs_off": commits, "noise": noise, "runs": runs,
                 "rounds": sizes.write_rounds, "hit_seconds": sizes.hit_seconds,
                 "write_seconds": sizes.write_seconds, "cached_codes": len(codes)},
        note=(f"hits {hits:.3f}x (noise ±{noise['hits'] * 100:.1f} %; median req/s on "
              f"{median(runs['hits_on']):.0f}, off {median(runs['hits_off']):.0f}); commits {commits:.3f}x "
              f"(noise ±{noise['commits'] * 100:.1f} %; median tps on {median(runs['commits_on']):.0f}, "
              f"off {median(runs['commits_off']):.0f})"))
