"""What the consistency sampler looks at next, and what its comparisons mean (after Meta's Polaris). No I/O.

A key is compared once: it agrees (consistent), or its mismatch is followed, compared again soon and
then less often, until it agrees or is gone (late: an invalidation was on its way) or `stale_after`
seconds pass since it was first seen (stale: nothing is coming to fix it). A stale value is reported
once: met again unchanged, it counts for nothing until it is gone or replaced.

Which key next: a follow-up that is due, first; then keys Redis just said were written or deleted
(an invalidation, then a reader's fill: where a stale set would show), three turns in four; then the
walk over every cached key, so that a value nobody touches is looked at too.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

CONSISTENT, LATE, STALE = "consistent", "late", "stale"
# A mismatch is compared again after the first wait, then after twice as long each time, up to the second.
RECHECK_SECONDS = (0.05, 1.0)
# Keys heard of and not yet compared; past this the oldest are forgotten (the walk still comes by them).
RECENT_MAX = 1000
# Of every RECENT_SHARE[1] turns, the heard-of keys take RECENT_SHARE[0] and the walk the rest.
RECENT_SHARE = (3, 4)
# Stale values already reported, remembered so that each is reported once; past this the oldest are forgotten.
REPORTED_MAX = 10_000


@dataclass
class Following:
    """A mismatch being followed: when it was first seen, when to compare it next, and the wait after that."""
    key: str
    first_seen: float
    due: float
    wait: float


@dataclass(frozen=True)
class Verdict:
    """What one comparison concluded: a result to count (None while a mismatch is still followed, or when
    nothing was cached), how long a mismatch lived once it ended (healed or declared stale), and whether
    this was the first sight of a mismatch."""
    result: str | None = None
    lifetime: float | None = None
    new_mismatch: bool = False


class Schedule:
    def __init__(self, stale_after: float, *, recheck: tuple[float, float] = RECHECK_SECONDS,
                 recent_max: int = RECENT_MAX) -> None:
        self.stale_after, self.recheck, self.recent_max = stale_after, recheck, recent_max
        self.following: dict[str, Following] = {}
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.reported: OrderedDict[str, object] = OrderedDict()  # key -> the stale value's identity
        self._turn = 0

    def heard(self, keys: Iterable[str], now: float) -> None:
        """Redis said these keys were just written or deleted: compare them soon."""
        for key in keys:
            followed = self.following.get(key)
            if followed is not None:
                followed.due = min(followed.due, now)  # it changed: it may have healed
            elif key not in self.recent:
                self.recent[key] = None
                if len(self.recent) > self.recent_max:
                    self.recent.popitem(last=False)

    def next(self, now: float, walk: Callable[[], str | None]) -> str | None:
        """The key to compare now; `walk()` gives the next key of the walk (None: no key cached)."""
        if self.following:
            soonest = min(self.following.values(), key=lambda f: f.due)
            if soonest.due <= now:
                return soonest.key
        self._turn = (self._turn + 1) % RECENT_SHARE[1]
        if self.recent and self._turn < RECENT_SHARE[0]:
            return self._take_recent()
        key = walk()
        if key is None and self.recent:
            return self._take_recent()
        return key

    def _take_recent(self) -> str:
        return self.recent.popitem(last=False)[0]

    def seen(self, key: str, agrees: bool | None, now: float, value: object = None) -> Verdict:
        """Record a comparison of `key`: `agrees` True or False, None when the key was not cached; `value`
        identifies the cached value (a stale one met again unchanged is not reported twice)."""
        if key in self.reported:
            if agrees is False and self.reported[key] == value:
                return Verdict()
            del self.reported[key]
        followed = self.following.get(key)
        if followed is None:
            if agrees is None:
                return Verdict()  # nothing cached: nothing to compare
            if agrees:
                return Verdict(CONSISTENT)
            wait = self.recheck[0]
            self.following[key] = Following(key, now, min(now + wait, now + self.stale_after), wait)
            return Verdict(new_mismatch=True)
        lived = now - followed.first_seen
        if agrees is None or agrees:
            del self.following[key]
            return Verdict(LATE, lived)
        if lived >= self.stale_after:
            del self.following[key]
            self.reported[key] = value
            if len(self.reported) > REPORTED_MAX:
                self.reported.popitem(last=False)
            return Verdict(STALE, lived)
        followed.wait = min(followed.wait * 2, self.recheck[1])
        # Never later than the limit: a stale value is declared when the limit passes, not a wait after.
        followed.due = min(now + followed.wait, followed.first_seen + self.stale_after)
        return Verdict()
