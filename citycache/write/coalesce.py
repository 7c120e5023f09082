"""The changes of one publish, as events: both capture modes (the outbox, the WAL) fill one.

A change is a rule and one row's values of its key columns. A window holds thousands of changes of
a few hundred distinct values: each distinct one is kept once with the earliest and the latest commit
it covers, and only then does its rule render its keys. Each key is one event, however many changes
named it (so the cleaner's commit->DEL figure counts from the oldest). TRUNCATEs are one
invalidate_all of their rules' prefixes. A value that makes no usable key is reported in `unusable`
once `events()` ran, never published.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from citycache.events import Invalidation, everything
from citycache.rules import Rule


@dataclass
class Unusable:
    table: str
    why: str


class _Seen:
    """The commits one distinct change (or the TRUNCATEs) covers."""

    __slots__ = ("rule", "first", "last", "event_id")

    def __init__(self, rule: Rule | None, first, last, event_id) -> None:
        self.rule, self.first, self.last, self.event_id = rule, first, last, event_id

    def cover(self, first, last, event_id) -> None:
        if first is not None and (self.first is None or first < self.first):
            self.first = first
        if last is not None and (self.last is None or last > self.last):
            self.last = last
        if event_id is not None:
            self.event_id = event_id


class Coalescer:
    def __init__(self) -> None:
        self._changes: dict[tuple[str, tuple], _Seen] = {}
        self._prefixes: dict[str, None] = {}
        self._wipe: _Seen | None = None
        self.unusable: list[Unusable] = []
        self.changes = 0  # changes added, before coalescing

    def __bool__(self) -> bool:
        return bool(self._changes) or self._wipe is not None

    def change(self, rule: Rule, values: Sequence[str | None], committed_at: float | None,
               last_committed_at: float | None = None, event_id: int | None = None) -> None:
        self.changes += 1
        last = committed_at if last_committed_at is None else last_committed_at
        key = (rule.table, tuple(values))
        seen = self._changes.get(key)
        if seen is None:
            self._changes[key] = _Seen(rule, committed_at, last, event_id)
        else:
            seen.cover(committed_at, last, event_id)

    def truncate(self, rule: Rule, committed_at: float | None, last_committed_at: float | None = None,
                 event_id: int | None = None) -> None:
        self.changes += 1
        self._prefixes.update(dict.fromkeys(rule.prefixes))
        last = committed_at if last_committed_at is None else last_committed_at
        if self._wipe is None:
            self._wipe = _Seen(None, committed_at, last, event_id)
        else:
            self._wipe.cover(committed_at, last, event_id)

    def events(self) -> list[Invalidation]:
        """One event per key, in the order first seen; the invalidate_all (if any) last."""
        by_key: dict[str, _Seen] = {}
        self.unusable = []
        for (table, values), seen in self._changes.items():
            keys, problems = seen.rule.render(values)
            self.unusable += [Unusable(table, why) for why in problems]
            for key in keys:
                found = by_key.get(key)
                if found is None:
                    by_key[key] = _Seen(None, seen.first, seen.last, seen.event_id)
                else:
                    found.cover(seen.first, seen.last, seen.event_id)
        events = [Invalidation(key, committed_at=s.first, last_committed_at=s.last, event_id=s.event_id)
                  for key, s in by_key.items()]
        if self._wipe is not None:
            w = self._wipe
            events.append(everything(tuple(self._prefixes), committed_at=w.first, last_committed_at=w.last,
                                     event_id=w.event_id))
        return events
