"""What the database says about the rules' tables: that each exists with the columns its keys name,
and what capture needs to know of it (its schema, keys, replica identity and column types).

`describe` is the one check every program makes at start (citycache/runtime/startup.py), and the one
`bin/cli doctor` and `schema install` make: a rule naming a table or a column the database does not
have is refused with one line that names it.
"""
from __future__ import annotations

from dataclasses import dataclass

from citycache.rules import BadRules, Rule, Rules

BPCHAR_OID = 1042  # char(n): Postgres pads it with spaces, which its cast to text drops

_TABLE_SQL = """
SELECT c.oid::bigint, n.nspname, c.relname, c.relkind, c.relreplident
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s)
"""
_COLUMNS_SQL = """
SELECT attname, atttypid::bigint, attnotnull FROM pg_attribute
WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum
"""
# Unique indexes a replica identity may use: immediate, without a predicate or expressions.
_INDEXES_SQL = """
SELECT ic.relname, i.indisprimary, i.indisreplident,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[],
       coalesce(obj_description(i.indexrelid, 'pg_class'), '')
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = %s AND i.indisunique AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL
ORDER BY i.indisprimary DESC, i.indnkeyatts, 1
"""


@dataclass(frozen=True)
class Index:
    name: str  # in the table's schema
    columns: tuple[str, ...]
    primary: bool
    identity: bool  # the table's REPLICA IDENTITY USING INDEX
    comment: str


@dataclass(frozen=True)
class Table:
    rule: Rule
    oid: int
    schema: str
    name: str
    columns: dict[str, tuple[int, bool]]  # name -> (type oid, NOT NULL), in table order
    identity: str  # relreplident: d(efault), n(othing), f(ull), i(ndex)
    indexes: tuple[Index, ...]

    @property
    def sql_name(self) -> str:
        """The table for SQL, schema-qualified and quoted."""
        return f'{quote(self.schema)}.{quote(self.name)}'

    @property
    def primary_key(self) -> tuple[str, ...]:
        return next((index.columns for index in self.indexes if index.primary), ())

    @property
    def identity_columns(self) -> tuple[str, ...] | None:
        """The columns an old row carries in the WAL (None: all of them, FULL; (): none)."""
        if self.identity == "f":
            return None
        if self.identity == "i":
            return next((index.columns for index in self.indexes if index.identity), ())
        return self.primary_key if self.identity == "d" else ()

    def is_bpchar(self, column: str) -> bool:
        return self.columns[column][0] == BPCHAR_OID


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def describe(conn, rules: Rules) -> dict[str, Table]:
    """Each rule's table as the database has it; BadRules naming the first rule it lacks a table or a
    column for."""
    found = {}
    with conn.cursor() as cur:
        for number, rule in enumerate(rules.rules, start=1):
            where = f"rules: {rules.path}: rule {number} (table {rule.table})"
            cur.execute(_TABLE_SQL, (rule.table,))
            row = cur.fetchone()
            if row is None:
                raise BadRules(f"{where}: the database (DATABASE_URL) has no table {rule.table}: create it, "
                               f"or fix the rule's table name")
            oid, schema, name, kind, identity = row
            if kind not in ("r", "p"):
                raise BadRules(f"{where}: {rule.table} is not a table (a view or another kind): name a table")
            cur.execute(_COLUMNS_SQL, (oid,))
            columns = {column: (type_oid, not_null) for column, type_oid, not_null in cur.fetchall()}
            for template in rule.keys:
                absent = [column for column in template.columns if column not in columns]
                if absent:
                    raise BadRules(f"{where}: key {template.text!r} names {{{absent[0]}}}, which {rule.table} "
                                   f"does not have (its columns: {', '.join(columns)}): fix the template")
            cur.execute(_INDEXES_SQL, (oid,))
            indexes = tuple(Index(index, tuple(cols), primary, replident, comment)
                            for index, primary, replident, cols, comment in cur.fetchall())
            found[rule.table] = Table(rule, oid, schema, name, columns, identity, indexes)
    return found
