"""The page's panel: per-step figures from cumulative snapshots, the p99 as Prometheus computes it, the sparklines."""
import pytest

from web.trends import HEIGHT, KEEP, WIDTH, Snapshot, duration, quantile, sparkline, steps

INF = float("inf")


@pytest.mark.parametrize("buckets, expected", [
    ([(0.01, 100), (1.0, 100), (INF, 100)], 0.0099),  # all fast: within the first bucket, interpolated from 0
    ([(0.01, 0), (1.0, 0), (2.5, 10), (INF, 10)], 2.485),  # the rules' unit test case: 1 + 1.5 * 0.99
    ([(0.01, 0), (1.0, 0), (INF, 10)], 1.0),  # beyond the last finite bound: that bound, as histogram_quantile
    ([(0.01, 0), (INF, 0)], None),  # no observation
])
def test_the_p99_is_interpolated_within_its_bucket_as_histogram_quantile_does(buckets, expected):
    found = quantile(0.99, buckets)
    assert found == expected if expected is None else found == pytest.approx(expected)


def test_a_step_is_the_difference_between_two_snapshots():
    before = Snapshot(0.0, {"consistent": 90, "late": 5, "stale": 1}, ((0.01, 10), (1.0, 10), (INF, 10)))
    after = Snapshot(5.0, {"consistent": 99, "late": 6, "stale": 1}, ((0.01, 10), (1.0, 10), (INF, 20)))
    (step,) = steps([before, after])
    assert (step.samples, step.consistent, step.late, step.stale) == (10, 9, 1, 0)
    assert step.ratio == 0.9 and step.p99 == 1.0  # the 10 new observations were all past 1 s
    assert steps([after, after])[0].ratio is None and steps([after, after])[0].p99 is None


def test_the_sparkline_puts_the_newest_step_at_the_right_and_leaves_gaps_as_gaps():
    line = sparkline([100.0, 95.0, None, 100.0, 100.0, None, 97.5], 95.0, 100.0)
    xs = [float(p.split(",")[0]) for run in line["lines"] for p in run.split()] + [float(x) for x, _ in line["dots"]]
    assert max(xs) == WIDTH and min(xs) > 0, "seven steps of KEEP: they fill from the right"
    assert len(line["lines"]) == 2 and len(line["dots"]) == 1  # two runs of two, and the last step alone
    top, bottom = (float(p.split(",")[1]) for p in line["lines"][0].split())
    assert top < bottom and 0 <= top and bottom <= HEIGHT  # 100 % at the top, 95 % at the bottom
    full = sparkline([1.0] * KEEP, 0.0, 2.0)
    assert full["lines"][0].split()[0].startswith("0.0,")


@pytest.mark.parametrize("seconds, shown", [(0.0042, "4.2 ms"), (0.25, "250 ms"), (2.5, "2.5 s"), (30.0, "≥ 30 s"),
                                            (None, None)])
def test_latencies_read_in_the_unit_that_fits_and_a_capped_one_says_so(seconds, shown):
    assert duration(seconds, 30.0) == shown
