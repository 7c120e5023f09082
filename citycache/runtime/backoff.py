"""Exponential reconnect delays for the blocking workers' loops."""
from __future__ import annotations


class Backoff:
    """Delays base, 2*base, ... up to cap; reset after a success."""

    def __init__(self, base: float = 0.2, cap: float = 10.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
