"""Heartbeats in the real Redis: written with a TTL, throttled, deleted on a clean stop."""
import time

from citycache.runtime.heartbeat import BEAT_SECONDS, TTL_SECONDS, Heartbeat, ages, heartbeat_key


def test_a_beat_writes_the_time_with_a_ttl_and_stop_deletes_it(redis):
    beat = Heartbeat(redis, "test_worker")
    try:
        beat.beat()
        key = heartbeat_key("test_worker")
        assert abs(float(redis.get(key)) - time.time()) < 2
        assert 0 < redis.ttl(key) <= TTL_SECONDS
        redis.set(key, b"0", ex=TTL_SECONDS)
        beat.beat()  # within BEAT_SECONDS of the last one: throttled, the marker stays
        assert redis.get(key) == b"0"
        beat._next -= BEAT_SECONDS  # as if BEAT_SECONDS went by
        beat.beat()
        assert abs(float(redis.get(key)) - time.time()) < 2
    finally:
        beat.stop()
    assert not redis.exists(heartbeat_key("test_worker"))


def test_both_running_workers_beat(base_url, redis):
    assert all(age is not None and age < TTL_SECONDS for age in ages(redis).values())


def test_one_instance_stopping_leaves_the_worker_alive(base_url, redis):
    """A second kafka_cleaner that stops cleanly deletes its own key, not the running one's."""
    other = Heartbeat(redis, "kafka_cleaner")
    other.key = heartbeat_key("kafka_cleaner", "elsewhere:1")  # as if from another host
    other.beat()
    other.stop()
    assert ages(redis)["kafka_cleaner"] is not None
