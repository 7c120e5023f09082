"""The capture window: at once while changes trickle, longer as they come faster, never past the longest."""
import pytest

from citycache.write.window import FULL_RATE, Window


def test_a_quiet_database_publishes_at_once():
    window = Window(0.0, 0.25)
    assert window.seconds() == 0.0
    window.observe(1, 2.0)  # one change in the last two seconds
    assert window.seconds() == pytest.approx(0.25 * (0.5 / FULL_RATE) ** 2)
    assert window.seconds() < 0.001


def test_the_window_grows_with_the_square_of_the_rate_up_to_the_longest():
    window = Window(0.005, 0.25)
    seen = []
    for rate in (10, FULL_RATE / 4, FULL_RATE / 2, FULL_RATE, FULL_RATE * 10):
        window.observe(int(rate), 1.0)
        seen.append(window.seconds())
    assert seen == pytest.approx([0.005, 0.25 / 16, 0.25 / 4, 0.25, 0.25])


def test_the_rate_is_that_of_the_last_window_only():
    window = Window(0.005, 0.25)
    window.observe(10_000, 1.0)
    assert window.seconds() == 0.25
    window.observe(0, 2.0)  # the load stopped: the next change goes out at once again
    assert window.seconds() == 0.005


def test_a_longest_window_below_the_shortest_is_the_shortest():
    window = Window(0.005, 0.0)  # CAPTURE_WINDOW_MS=0: every drain as soon as the shortest allows
    window.observe(100_000, 1.0)
    assert window.seconds() == 0.005
