"""The changes of one publish, as events: both capture modes (the outbox, the WAL) fill one.

A change is a rule and one row's values of its key columns; the rule renders its keys. Each key is
one event, however many changes named it, carrying the earliest and the latest commit it covers (so
the cleaner's commit->DEL figure counts from the oldest). TRUNCATEs are one invalidate_all of their
rules' prefixes. A value that makes no usable key is counted and reported, never published.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from citycache.events import Invalidation, everything
from citycache.rules import Rule


@dataclass
class Unusable:
    table: str
    why: str


class Coalescer:
    def __init__(self) -> None:
        self._keys: dict[str, Invalidation] = {}
        self._prefixes: dict[str, None] = {}
        self._wipe: Invalidation | None = None
        self.unusable: list[Unusable] = []
        self.changes = 0  # changes added, before coalescing

    def __bool__(self) -> bool:
        return bool(self._keys) or self._wipe is not None

    def change(self, rule: Rule, values: Sequence[str | None], committed_at: float | None,
               last_committed_at: float | None = None, event_id: int | None = None) -> None:
        self.changes += 1
        keys, problems = rule.render(values)
        self.unusable += [Unusable(rule.table, why) for why in problems]
        last = committed_at if last_committed_at is None else last_committed_at
        for key in keys:
            seen = self._keys.get(key)
            if seen is None:
                self._keys[key] = Invalidation(key, committed_at=committed_at, last_committed_at=last,
                                               event_id=event_id)
            else:
                self._keys[key] = _merged(seen, committed_at, last, event_id)

    def truncate(self, rule: Rule, committed_at: float | None, last_committed_at: float | None = None,
                 event_id: int | None = None) -> None:
        self.changes += 1
        self._prefixes.update(dict.fromkeys(rule.prefixes))
        last = committed_at if last_committed_at is None else last_committed_at
        if self._wipe is None:
            self._wipe = everything((), committed_at=committed_at, last_committed_at=last, event_id=event_id)
        else:
            self._wipe = _merged(self._wipe, committed_at, last, event_id)

    def events(self) -> list[Invalidation]:
        """One event per key, in the order first seen; the invalidate_all (if any) last."""
        found = list(self._keys.values())
        if self._wipe is not None:
            found.append(replace(self._wipe, prefixes=tuple(self._prefixes)))
        return found


def _merged(seen: Invalidation, committed_at, last, event_id) -> Invalidation:
    return replace(seen, committed_at=_earliest(seen.committed_at, committed_at),
                   last_committed_at=_latest(seen.last_committed_at, last),
                   event_id=event_id if event_id is not None else seen.event_id)


def _earliest(a, b):
    return b if a is None else a if b is None else min(a, b)


def _latest(a, b):
    return b if a is None else a if b is None else max(a, b)
