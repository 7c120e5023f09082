"""A decoder for the few pgoutput messages (protocol version 1) that say which rows of the rules'
tables changed: their key columns' values, per committed transaction.

Begin, Relation, Insert, Update, Delete, Truncate, logical Message and Commit; others are skipped.
Each Relation is mapped to its rule by schema and name, so a published table outside the rules is
never taken for one inside. With a replica identity that covers the key columns
(citycache/write/replication.py), an UPDATE carries the old row ('K' or 'O') exactly when they may have
changed, so a row that moves yields its old values and its new ones; a DELETE always carries them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from citycache.rules import Rule
from citycache.tables import BPCHAR_OID

PG_EPOCH = 946_684_800  # 2000-01-01 in Unix seconds: pgoutput timestamps count from there


@dataclass
class Relation:
    name: str
    rule: Rule | None  # None: not a table of the rules (nothing it changes counts)
    slots: dict[int, int] | None = None  # index among the sent columns -> place in the rule's columns
    padded: tuple[bool, ...] = ()  # char(n): drop the padding, as a cast to text does


class Transaction:
    """What one committed transaction changed: each (rule, values) once, in order; the rules it
    truncated; its commit time and where its commit ends. `everything`: a change of a table never
    announced. Made once per transaction at thousands a second: slots, and one dict for the changes."""

    __slots__ = ("_changes", "truncated", "everything", "committed_at", "end_lsn")

    def __init__(self, committed_at: float | None = None) -> None:
        self._changes: dict[tuple[str, tuple], Rule] = {}
        self.truncated: list[Rule] = []
        self.everything = False
        self.committed_at = committed_at
        self.end_lsn = 0

    @property
    def changes(self) -> list[tuple[Rule, tuple[str | None, ...]]]:
        return [(rule, values) for (_table, values), rule in self._changes.items()]


# Precompiled: at thousands of commits per second every message passes through here.
_U32, _I16, _I32 = struct.Struct("!I"), struct.Struct("!h"), struct.Struct("!i")
_BEGIN, _COMMIT, _TRUNCATE = struct.Struct("!qqi"), struct.Struct("!bqqq"), struct.Struct("!ib")


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: struct.Struct):
        values = fmt.unpack_from(self.data, self.at)
        self.at += fmt.size
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        end = self.data.index(b"\0", self.at)
        value = self.data[self.at:end].decode()
        self.at = end + 1
        return value

    def columns(self, slots: dict[int, int], count_wanted: int) -> list[str | None]:
        """Walk one TupleData; return the text of the wanted columns (`slots`: column index -> place in
        the result; others are skipped, not decoded); None for a NULL or an unchanged TOAST value."""
        data, at = self.data, self.at
        count = _I16.unpack_from(data, at)[0]
        at += 2
        values: list[str | None] = [None] * count_wanted
        for index in range(count):
            kind = data[at]
            at += 1
            if kind == 0x74:  # 't': a text value of the given length
                size = _I32.unpack_from(data, at)[0]
                at += 4
                slot = slots.get(index)
                if slot is not None:
                    values[slot] = data[at:at + size].decode()
                at += size
            # 'n' null, 'u' unchanged TOAST value: no bytes follow
        self.at = at
        return values


class Decoder:
    """Feeds on pgoutput messages; returns a Transaction at each Commit. `rules_by_table` maps
    (schema, table) to the rule of each published table of the rules."""

    def __init__(self, rules_by_table: dict[tuple[str, str], Rule]) -> None:
        self.rules_by_table = rules_by_table
        self.relations: dict[int, Relation] = {}
        self.current = Transaction()
        self.in_transaction = False  # between a Begin and its Commit

    def feed(self, data: bytes) -> Transaction | None:
        reader = Reader(data)
        reader.at = 1
        kind = data[:1]
        if kind == b"B":
            _final_lsn, timestamp, _xid = reader.take(_BEGIN)
            self.current = Transaction(committed_at=PG_EPOCH + timestamp / 1_000_000)
            self.in_transaction = True
        elif kind in (b"I", b"U", b"D"):
            relation = self.relations.get(reader.take(_U32))
            if relation is None:  # never announced (pgoutput always does): assume the worst
                self.current.everything = True
                return None
            if relation.rule is None:
                return None
            while reader.at < len(data):
                part = data[reader.at:reader.at + 1]  # 'K' old key, 'O' old row, 'N' new row
                reader.at += 1
                self._add(relation, reader.columns(relation.slots, len(relation.padded)))
                if part == b"N":
                    break
        elif kind == b"C":
            _flags, _commit_lsn, end_lsn, _timestamp = reader.take(_COMMIT)
            done, self.in_transaction = self.current, False  # the next Begin makes the next one
            done.end_lsn = end_lsn
            return done
        elif kind == b"R":
            relid = reader.take(_U32)
            namespace, name = reader.string(), reader.string()
            reader.at += 1  # replica identity setting
            columns, types = [], []
            for _ in range(reader.take(_I16)):
                reader.at += 1  # flags
                columns.append(reader.string())
                types.append(reader.take(_U32))
                reader.at += 4  # type modifier
            self.relations[relid] = self._relation(namespace, name, columns, types)
        elif kind == b"T":
            count, _options = reader.take(_TRUNCATE)
            for relid in [reader.take(_U32) for _ in range(count)]:
                relation = self.relations.get(relid)
                if relation is None:
                    self.current.everything = True
                elif relation.rule is not None and relation.rule not in self.current.truncated:
                    self.current.truncated.append(relation.rule)
        return None

    def _relation(self, namespace: str, name: str, columns: list[str], types: list[int]) -> Relation:
        rule = self.rules_by_table.get((namespace, name))
        if rule is None:
            return Relation(name, None)
        # A key column the publication does not send stays None: reported as unusable, never "None".
        slots = {columns.index(c): place for place, c in enumerate(rule.columns) if c in columns}
        at = {place: index for index, place in slots.items()}
        padded = tuple(place in at and types[at[place]] == BPCHAR_OID for place in range(len(rule.columns)))
        return Relation(name, rule, slots, padded)

    def _add(self, relation: Relation, values: list[str | None]) -> None:
        for i, pad in enumerate(relation.padded):
            if pad and values[i] is not None:
                values[i] = values[i].rstrip(" ")
        # A dict: a 100k-row UPDATE adds the same few hundred values 100k times.
        self.current._changes.setdefault((relation.rule.table, tuple(values)), relation.rule)
