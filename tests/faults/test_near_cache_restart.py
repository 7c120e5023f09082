"""The near cache across a Redis restart: lost contact empties every API process' copy, so a write
committed while Redis was away is seen once it is back (its DEL finds nothing to delete, so no
invalidation push would ever drop an old copy)."""
import pytest

from tests.api_answers import expect, warm
from tests.support import start_service, stop_service

pytestmark = pytest.mark.slow


def test_the_api_is_fresh_after_a_redis_restart(base_url, http, db, test_cities, pipeline_flows):
    test_cities("QQA", ("Alpha", 1))
    warm(http, base_url, "QQA")
    stop_service("redis")  # asserts it is down
    try:
        with db.cursor() as cur:
            cur.execute("UPDATE city SET population = 4 WHERE countrycode = 'QQA'")
    finally:
        start_service("redis")
    pipeline_flows()
    expect(http, base_url, "QQA", [("Alpha", 4)])
