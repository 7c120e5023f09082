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


@dataclass
class Transaction:
    """What one committed transaction changed: the codes, its commit time and where its commit ends."""
    codes: list[str] = field(default_factory=list)
    committed_at: float | None = None
    end_lsn: int = 0


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        end = self.data.index(b"\0", self.at)
        value = self.data[self.at:end].decode()
        self.at = end + 1
        return value

    def tuple(self) -> list[str | None]:
        values: list[str | None] = []
        for _ in range(self.take("!h")):
            kind = self.take("!c")
            if kind == b"t":
                size = self.take("!i")
                values.append(self.data[self.at:self.at + size].decode())
                self.at += size
            else:  # 'n' null, 'u' unchanged TOAST value
                values.append(None)
        return values


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
        kind = reader.take("!c")
        if kind == b"B":
            _final_lsn, timestamp, _xid = reader.take("!qqi")
            self.current = Transaction(committed_at=PG_EPOCH + timestamp / 1_000_000)
            self.in_transaction = True
        elif kind == b"R":
            relid = reader.take("!I")
            _namespace, name, _identity = reader.string(), reader.string(), reader.take("!c")
            columns = []
            for _ in range(reader.take("!h")):
                reader.take("!b")
                columns.append(reader.string())
                reader.take("!ii")
            self.relations[relid] = Relation(name, columns)
        elif kind in (b"I", b"U", b"D"):
            relation = self.relations.get(reader.take("!I"))
            while reader.at < len(data):
                part = reader.take("!c")  # 'K' old key, 'O' old row, 'N' new row
                self._add(relation, reader.tuple())
                if part == b"N":
                    break
        elif kind == b"T":
            count, _options = reader.take("!ib")
            relids = [reader.take("!I") for _ in range(count)]
            if any(self._ours(self.relations.get(relid)) for relid in relids):
                self.current.codes.append(ALL_CODES)
        elif kind == b"C":
            _flags, _commit_lsn, end_lsn, _timestamp = reader.take("!bqqq")
            done, self.current, self.in_transaction = self.current, Transaction(), False
            done.end_lsn = end_lsn
            return done
        return None

    def _ours(self, relation: Relation | None) -> bool:
        return relation is not None and self.code_column in relation.columns

    def _add(self, relation: Relation | None, values: list[str | None]) -> None:
        if relation is None:  # never announced (pgoutput always does): assume the worst
            self.current.codes.append(ALL_CODES)
            return
        if not self._ours(relation):
            return
        code = values[relation.columns.index(self.code_column)]
        if code is not None and code not in self.current.codes:
            self.current.codes.append(code)
