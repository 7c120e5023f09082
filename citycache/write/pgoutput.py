"""A decoder for the few pgoutput messages (protocol version 1) that say which country codes changed.

Begin, Relation, Insert, Update, Delete, Truncate, logical Message and Commit; others are skipped.
With REPLICA IDENTITY USING INDEX on (id, countrycode), an UPDATE carries the old key ('K') exactly
when the key changed, so a country move yields both codes; a DELETE always carries it.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from citycache.events import ALL_CODES

PG_EPOCH = 946_684_800  # 2000-01-01 in Unix seconds: pgoutput timestamps count from there


@dataclass
class Relation:
    name: str
    columns: list[str]
    code_at: int = -1  # the index of the code column, -1 if the table has none (not ours)


@dataclass
class Transaction:
    """What one committed transaction changed: the codes, its commit time and where its commit ends."""
    codes: list[str] = field(default_factory=list)
    committed_at: float | None = None
    end_lsn: int = 0
    seen: set[str] = field(default_factory=set, repr=False, compare=False)


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

    def column(self, wanted: int) -> str | None:
        """Walk one TupleData; return only column `wanted` (others are skipped, not decoded)."""
        data, at = self.data, self.at
        count = _I16.unpack_from(data, at)[0]
        at += 2
        value = None
        for index in range(count):
            kind = data[at]
            at += 1
            if kind == 0x74:  # 't': a text value of the given length
                size = _I32.unpack_from(data, at)[0]
                at += 4
                if index == wanted:
                    value = data[at:at + size].decode()
                at += size
            # 'n' null, 'u' unchanged TOAST value: no bytes follow
        self.at = at
        return value


class Decoder:
    """Feeds on pgoutput messages; returns a Transaction at each Commit.

    Every published table with a `code_column` counts (the publication holds city; the benchmarks add
    copies of it); other tables are ignored."""

    def __init__(self, code_column: str = "countrycode") -> None:
        self.code_column = code_column
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
                self._add(ALL_CODES)
                return None
            if relation.code_at < 0:
                return None
            while reader.at < len(data):
                part = data[reader.at:reader.at + 1]  # 'K' old key, 'O' old row, 'N' new row
                reader.at += 1
                code = reader.column(relation.code_at)
                if code is not None:
                    self._add(code)
                if part == b"N":
                    break
        elif kind == b"C":
            _flags, _commit_lsn, end_lsn, _timestamp = reader.take(_COMMIT)
            done, self.current, self.in_transaction = self.current, Transaction(), False
            done.end_lsn = end_lsn
            return done
        elif kind == b"R":
            relid = reader.take(_U32)
            _namespace, name = reader.string(), reader.string()
            reader.at += 1  # replica identity setting
            columns = []
            for _ in range(reader.take(_I16)):
                reader.at += 1  # flags
                columns.append(reader.string())
                reader.at += 8  # type oid, type modifier
            code_at = columns.index(self.code_column) if self.code_column in columns else -1
            self.relations[relid] = Relation(name, columns, code_at)
        elif kind == b"T":
            count, _options = reader.take(_TRUNCATE)
            relids = [reader.take(_U32) for _ in range(count)]
            if any(self._ours(self.relations.get(relid)) for relid in relids):
                self._add(ALL_CODES)
        return None

    def _ours(self, relation: Relation | None) -> bool:
        return relation is not None and relation.code_at >= 0

    def _add(self, code: str) -> None:
        if code not in self.current.seen:  # a set: a 100k-row UPDATE asks this 100k times
            self.current.seen.add(code)
            self.current.codes.append(code)
