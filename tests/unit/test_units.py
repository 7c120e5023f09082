"""Unit tests of the workers' and the API's pure steps (no services needed)."""
from collections import namedtuple

import pytest

from citycache import rules
from citycache.read.images import valid_image_name
from tests.support import ROOT
from workers.kafka_cleaner import plan_batch

Record = namedtuple("Record", "partition offset value")
RULES = rules.parse((ROOT / "invalidation.toml").read_text())


def test_plan_coalesces_keys_and_skips_bad_events():
    records = [
        Record(0, 1, b'{"action":"invalidate_cache","code":"BGR","key":"cities_BGR"}'),
        Record(0, 2, b"garbage"),
        Record(0, 3, b'{"action":"invalidate_cache","key":"country_DEU"}'),
        Record(0, 4, b'{"action":"invalidate_cache","code":"BGR"}'),  # from before the rules: cities_BGR
        Record(0, 5, None),
    ]
    plan = plan_batch(records, RULES)
    assert plan.keys == ["cities_BGR", "country_DEU"]
    assert plan.skipped == 2
    assert not plan.prefixes


def test_plan_invalidate_all_wipes_its_prefixes_or_every_rules():
    assert plan_batch([Record(0, 1, b'{"action":"invalidate_all","prefixes":["country_"]}')], RULES).prefixes == ["country_"]
    assert plan_batch([Record(0, 1, b'{"action":"invalidate_all"}')], RULES).prefixes == ["cities_", "country_"]


@pytest.mark.parametrize("name", ["bulgaria.svg", "world.png", "a", "A-b_c.d.jpeg", "x" * 128])
def test_good_image_names(name):
    assert valid_image_name(name)


@pytest.mark.parametrize("name", [
    "", "../etc/passwd", "..", "a/b", ".hidden", "a\\b", "a\x00b", "a\nb", "x" * 129, "a..b", "é.png", "a b",
])
def test_bad_image_names(name):
    assert not valid_image_name(name)


def test_lag_is_end_minus_committed_and_an_uncommitted_partition_counts_from_zero():
    from citycache.pipeline import lag_by_partition

    assert lag_by_partition({0: 10, 1: 5, 2: 0}, {0: 7, 1: None}) == {0: 3, 1: 5, 2: 0}
    assert lag_by_partition({0: 3}, {0: 5}) == {0: 0}  # never negative (a truncated log)
