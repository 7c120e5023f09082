"""The near cache (DESIGN.md guarantee 10): a process-local copy is dropped by Redis' invalidation push,
an invalidation that races a fill cancels the fill, and lost contact with Redis empties it.

The first tests drive a NearCache and its listener in this process against the real Redis, to force
the interleavings; the others go through the running API, whose processes have it on by default.
"""
import pytest
import redis as redis_lib

from citycache.read.cities import key as cache_key
from citycache.read.near_cache import NearCache
from citycache.read.tracking import InvalidationListener
from citycache.rules import load
from tests.support import ROOT
from tests.api_answers import expect, near_metric, tracking_clients, warm
from tests.support import wait_until

KEY = cache_key("QQF")
RULES = load(ROOT / "invalidation.toml")


@pytest.fixture
def near(settings, redis):
    """A near cache in this process with its listener running; a slow reconnect, so tests can act
    while contact is lost."""
    cache = NearCache(1 << 20)
    listener = InvalidationListener(settings.redis_url, cache, RULES.tracking_prefixes, retry_min=1.5, retry_max=1.5)
    listener.ensure_started()
    wait_until(lambda: cache.live, message="tracking to be on")
    yield cache, listener
    listener.stop()
    redis.delete(KEY)


def write(cache: NearCache, redis, value: bytes, key: str = KEY) -> None:
    """SET, then wait for its own push to arrive: a fill racing it would (rightly) be refused."""
    ticket = cache.ticket(key)
    redis.set(key, value, ex=60)
    if ticket is not None:
        wait_until(lambda: cache.ticket(key) != ticket, message="the push of our own SET")


def read(cache: NearCache, redis, key: str = KEY):
    """The read path of web/cities.py: near copy, else ticket, GET, fill."""
    found = cache.get(key)
    if found is not None:
        return found
    ticket = cache.ticket(key)
    value = redis.get(key)
    if value is not None:
        cache.fill(key, ticket, value, len(value))
    return value


def test_an_invalidation_during_the_get_cancels_the_fill(near, redis):
    cache, _ = near
    write(cache, redis, b"old")
    ticket = cache.ticket(KEY)  # the reader takes its ticket ...
    value = redis.get(KEY)  # ... and its GET answers the old value
    redis.set(KEY, b"new", ex=60)  # a write lands before the reader stores
    wait_until(lambda: cache.ticket(KEY) != ticket, message="the invalidation push to arrive")
    assert cache.fill(KEY, ticket, value, len(value)) is False
    assert cache.get(KEY) is None
    assert read(cache, redis) == b"new" and cache.get(KEY) == b"new"


def test_a_push_drops_the_copy(near, redis):
    cache, _ = near
    write(cache, redis, b"v1")
    assert read(cache, redis) == b"v1" and cache.get(KEY) == b"v1"
    redis.delete(KEY)
    wait_until(lambda: cache.get(KEY) is None, message="the copy to be dropped")
    write(cache, redis, b"v2")
    assert read(cache, redis) == b"v2"


def test_a_killed_tracking_connection_empties_the_cache_and_bypasses_it_until_back(near, redis):
    cache, listener = near
    write(cache, redis, b"before")
    assert read(cache, redis) == b"before" and cache.get(KEY) == b"before"
    killed = listener.client_id
    ticket = cache.ticket(KEY)
    assert redis.client_kill_filter(_id=killed) == 1
    wait_until(lambda: not cache.live, message="the loss to be noticed")
    assert len(cache) == 0 and cache.bytes_held == 0  # flushed at once, not on reconnect
    assert cache.get(KEY) is None and cache.ticket(KEY) is None
    redis.set(KEY, b"during", ex=60)  # nobody would tell us about this write
    assert read(cache, redis) == b"during" and len(cache) == 0  # bypassed: read through, not kept
    assert cache.fill(KEY, ticket, b"before", 6) is False  # a ticket from before the loss is void
    wait_until(lambda: cache.live, timeout=10, message="tracking to be back")
    assert listener.client_id != killed
    assert read(cache, redis) == b"during" and cache.get(KEY) == b"during"
    redis.set(KEY, b"after", ex=60)
    wait_until(lambda: cache.get(KEY) is None, message="pushes to flow on the new connection")
    assert read(cache, redis) == b"after"


def test_flushdb_empties_it(near, redis, settings):
    cache, _ = near
    write(cache, redis, b"v")
    read(cache, redis)
    cache_other = cache_key("QQE")
    write(cache, redis, b"w", cache_other)
    read(cache, redis, cache_other)
    assert len(cache) == 2
    # Any FLUSHDB pushes "everything changed" (a null key list) to every tracking client; an empty
    # database of its own is flushed here, not the stack's cache and heartbeats.
    spare = redis_lib.Redis.from_url(settings.redis_url.rsplit("/", 1)[0] + "/9")
    try:
        spare.flushdb()
    finally:
        spare.close()
    wait_until(lambda: len(cache) == 0, message="the flush push")


# --- through the running API ------------------------------------------------------------------------

def test_the_api_serves_hits_from_memory_and_drops_them_on_a_write(base_url, http, db, test_cities):
    test_cities("QQA", ("Alpha", 1))
    warm(http, base_url, "QQA")
    with db.cursor() as cur:
        cur.execute("UPDATE city SET population = 2 WHERE countrycode = 'QQA'")
    expect(http, base_url, "QQA", [("Alpha", 2)])


def test_a_city_moving_country_refreshes_both_in_every_process(base_url, http, db, test_cities):
    test_cities("QQA", ("Alpha", 10), ("Beta", 5))
    test_cities("QQB", ("Gamma", 7))
    warm(http, base_url, "QQA", "QQB")
    with db.cursor() as cur:
        cur.execute("UPDATE city SET countrycode = 'QQB' WHERE countrycode = 'QQA' AND name = 'Beta'")
    expect(http, base_url, "QQA", [("Alpha", 10)])
    expect(http, base_url, "QQB", [("Gamma", 7), ("Beta", 5)])


def test_the_api_survives_its_tracking_connections_being_killed(base_url, http, db, redis, test_cities):
    test_cities("QQA", ("Alpha", 1))
    warm(http, base_url, "QQA")
    killed = tracking_clients(redis)
    assert killed, "each API process keeps a tracking connection"
    lost_before = near_metric(http, base_url, "citycache_near_cache_lost_total")
    for client_id in killed.values():
        assert redis.client_kill_filter(_id=client_id) == 1
    with db.cursor() as cur:  # a write right away, maybe before tracking is back
        cur.execute("UPDATE city SET population = 3 WHERE countrycode = 'QQA'")
    expect(http, base_url, "QQA", [("Alpha", 3)])
    wait_until(lambda: set(tracking_clients(redis).values()) - set(killed.values()), message="tracking back")
    assert near_metric(http, base_url, "citycache_near_cache_lost_total") >= lost_before + len(killed)
