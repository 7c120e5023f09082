"""How long a capture gathers changes before it publishes them: both modes of pg_listener use it.

Every publish costs the whole pipeline the same fixed work, whatever it carries: a Kafka produce with
acks=all, a fetch and an offset commit by a cleaner, a Redis round trip, a log line each. Changes of
one window are coalesced per key, so a window that lasts longer carries more commits for
about the same work. When changes trickle, the window is the shortest (a commit is published at
once); it grows with the square of the rate the changes came at in the previous window, up to
CAPTURE_WINDOW_MS once they come at FULL_RATE or faster. Square, not linear: at moderate rates
(50-1,000/s) the pipeline is cheap anyway and latency matters more (0.03 ms at 50/s, 10 ms at
1,000/s for a 250 ms longest), while at saturation the window is the longest. So a busy database
pays the pipeline a bounded number of publishes per second, and a quiet one keeps its millisecond
latency.
"""
from __future__ import annotations

# Changes per second from which the window is the longest (CAPTURE_WINDOW_MS).
FULL_RATE = 5000.0


class Window:
    def __init__(self, shortest: float, longest: float, full_rate: float = FULL_RATE) -> None:
        self.shortest = shortest
        self.longest = max(shortest, longest)
        self.full_rate = full_rate
        self.rate = 0.0  # changes per second seen in the last window

    def observe(self, changes: int, seconds: float) -> None:
        """`changes` were taken over the last `seconds` (since the previous publish)."""
        self.rate = changes / seconds if seconds > 0 else (self.full_rate if changes else 0.0)

    def seconds(self) -> float:
        """How long to gather before the next publish."""
        share = min(1.0, self.rate / self.full_rate)
        return min(self.longest, max(self.shortest, self.longest * share * share))
