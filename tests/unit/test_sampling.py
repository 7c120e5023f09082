"""The sampler's schedule: which key next, and what a comparison means (late, stale), on a clock of the test's own."""
from citycache.read.sampling import CONSISTENT, LATE, RECENT_SHARE, STALE, Schedule, Verdict


def walk_of(*keys):
    remaining = list(keys)
    return lambda: remaining.pop(0) if remaining else None


def test_an_agreeing_key_is_consistent_and_one_not_cached_counts_for_nothing():
    schedule = Schedule(stale_after=10)
    assert schedule.seen("cities_BGR", True, 0.0) == Verdict(CONSISTENT)
    assert schedule.seen("cities_BGR", None, 0.0) == Verdict()
    assert not schedule.following


def test_a_mismatch_that_heals_before_the_limit_is_late_with_its_lifetime():
    schedule = Schedule(stale_after=10)
    assert schedule.seen("cities_BGR", False, 100.0) == Verdict(new_mismatch=True)  # followed, not counted yet
    assert schedule.next(100.01, walk_of("other")) == "other"  # not due yet: the walk goes on
    assert schedule.next(100.05, walk_of("other")) == "cities_BGR"  # due: before anything else
    assert schedule.seen("cities_BGR", False, 100.05) == Verdict()
    assert schedule.seen("cities_BGR", True, 100.3) == Verdict(LATE, 100.3 - 100.0)
    assert not schedule.following


def test_a_followed_key_that_vanished_healed_too():
    schedule = Schedule(stale_after=10)
    schedule.seen("country_BGR", False, 0.0)
    assert schedule.seen("country_BGR", None, 2.0) == Verdict(LATE, 2.0)


def test_a_mismatch_that_outlives_the_limit_is_stale_and_declared_when_the_limit_passes():
    schedule = Schedule(stale_after=10)
    schedule.seen("cities_BGR", False, 0.0)
    now, waits = 0.0, []
    while True:
        due = schedule.following["cities_BGR"].due
        waits.append(round(due - now, 3))
        now = due
        verdict = schedule.seen("cities_BGR", False, now)
        if verdict.result is not None:
            break
    assert verdict == Verdict(STALE, 10.0), "declared at the limit, not a wait after it"
    assert waits[:6] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0] and max(waits) == 1.0  # sooner first, then once a second
    assert not schedule.following


def test_heard_keys_come_before_the_walk_which_still_gets_its_turns():
    schedule = Schedule(stale_after=10)
    schedule.heard([f"cities_Q{i:02d}" for i in range(20)], 0.0)
    picks = [schedule.next(0.0, lambda: "cities_WALK") for _ in range(RECENT_SHARE[1] * 3)]
    assert picks.count("cities_WALK") == 3, picks
    assert [p for p in picks if p != "cities_WALK"] == [f"cities_Q{i:02d}" for i in range(9)], "oldest first"


def test_with_nothing_cached_to_walk_the_heard_keys_take_every_turn():
    schedule = Schedule(stale_after=10)
    schedule.heard(["a", "b", "c", "d", "e"], 0.0)
    assert [schedule.next(0.0, lambda: None) for _ in range(6)] == ["a", "b", "c", "d", "e", None]


def test_a_key_heard_twice_is_compared_once_and_the_oldest_are_forgotten_past_the_bound():
    schedule = Schedule(stale_after=10, recent_max=3)
    schedule.heard(["a", "b", "a", "c", "d"], 0.0)
    assert list(schedule.recent) == ["b", "c", "d"]


def test_hearing_a_followed_key_changed_brings_its_next_comparison_forward():
    schedule = Schedule(stale_after=10)
    schedule.seen("cities_BGR", False, 0.0)
    schedule.seen("cities_BGR", False, 0.05)  # next due at 0.15
    schedule.heard(["cities_BGR"], 0.07)
    assert schedule.next(0.07, walk_of("other")) == "cities_BGR"
    assert "cities_BGR" not in schedule.recent


def declare_stale(schedule, key, value, start=0.0):
    schedule.seen(key, False, start, value)
    return schedule.seen(key, False, start + schedule.stale_after, value)


def test_a_stale_value_met_again_unchanged_is_reported_once():
    schedule = Schedule(stale_after=10)
    assert declare_stale(schedule, "country_FRA", b"lyon").result == STALE
    assert schedule.seen("country_FRA", False, 30.0, b"lyon") == Verdict(), "the walk came by again"
    assert not schedule.following


def test_a_stale_value_replaced_or_gone_is_a_new_story():
    schedule = Schedule(stale_after=10)
    declare_stale(schedule, "country_FRA", b"lyon")
    assert schedule.seen("country_FRA", False, 30.0, b"marseille") == Verdict(new_mismatch=True)
    assert schedule.seen("country_FRA", False, 40.0, b"marseille").result == STALE
    assert schedule.seen("country_FRA", True, 50.0, b"paris") == Verdict(CONSISTENT)
    declare_stale(schedule, "country_DEU", b"bonn")
    assert schedule.seen("country_DEU", None, 60.0) == Verdict()  # gone: forgotten
    assert schedule.seen("country_DEU", False, 61.0, b"bonn") == Verdict(new_mismatch=True)
