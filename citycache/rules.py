"""The invalidation rules (`invalidation.toml`): which table's changes delete which cache keys.

    [[rule]]
    table = "city"                        # optionally schema-qualified: "sales.orders"
    keys = ["cities_{countrycode}", "country_{countrycode}"]

Each `{column}` takes that column's value from every changed row (for an UPDATE, from the old row and
the new one), as Postgres writes it as text. Each template starts with a literal prefix; a TRUNCATE
of the table deletes every key under its rule's prefixes. A key is built from the row's own columns:
a key that needs a join is out of scope.

This module owns the key formats: templates and what they render, prefixes (matched literally, also
in a SCAN's glob), lease keys, and which values make no usable key. It reads the file only; what the
database says about the tables is citycache/tables.py.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Redis takes keys of up to 512 MB; a cache key past this is a template or a value gone wrong.
MAX_KEY_BYTES = 512
# Plain (unquoted) SQL names, as Postgres stores them: lower case.
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BadRules(SystemExit):
    """The rules file cannot be used: one line that names the rule and what to fix."""


class Unusable(ValueError):
    """A value that makes no usable key (NULL, empty, a control character, too long...)."""


def lease_key(key: str) -> str:
    """Marks "one reader is filling `key`"; an invalidation deletes it with the key. Its hash tag is
    the whole key, so in a Redis Cluster both live in one slot (`{cities_BGR}:lease`)."""
    return "{%s}:lease" % key


def glob_escape(text: str) -> str:
    """`text` as a Redis glob that matches it literally: a `*`, `?` or `[` never widens a SCAN."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def key_pattern(prefix: str) -> str:
    """The SCAN pattern of every key under `prefix`."""
    return glob_escape(prefix) + "*"


def lease_pattern(prefix: str) -> str:
    """The SCAN pattern of every lease of a key under `prefix`."""
    return "{" + glob_escape(prefix) + "*}:lease"


def unusable(key: str) -> str | None:
    """Why `key` cannot be a cache key, or None when it can."""
    if _CONTROL.search(key):
        return "a control character"
    if "{" in key or "}" in key:
        return "a brace (a key and its lease must share a Redis Cluster slot)"
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"longer than {MAX_KEY_BYTES} bytes"
    return None


@dataclass(frozen=True)
class Template:
    """A key template: literal text and `{column}` holes, starting with a literal prefix."""
    text: str
    literals: tuple[str, ...]  # the text around the holes: len(columns) + 1 pieces
    columns: tuple[str, ...]  # the holes, in order

    @property
    def prefix(self) -> str:
        return self.literals[0]

    @property
    def shape(self) -> tuple[str, ...]:
        """The literal text only: `country_{code}` and `country_{countrycode}` make the same keys."""
        return self.literals

    @classmethod
    def parse(cls, text: str) -> Template:
        """Raises ValueError saying what is wrong with `text`."""
        literals, columns, rest = [], [], text
        while True:
            opening, closing = rest.find("{"), rest.find("}")
            if opening < 0:
                if closing >= 0:
                    raise ValueError("a '}' without its '{'")
                literals.append(rest)
                break
            if closing < opening:
                raise ValueError("a '}' without its '{'" if closing >= 0 else "a '{' without its '}'")
            name = rest[opening + 1:closing]
            if not _NAME.fullmatch(name):
                raise ValueError(f"{{{name}}} is not a column name (lower-case letters, digits, _)")
            literals.append(rest[:opening])
            columns.append(name)
            rest = rest[closing + 1:]
        if not literals[0]:
            raise ValueError("it must start with a literal prefix, such as 'cities_' in 'cities_{countrycode}'")
        if _CONTROL.search(text):
            raise ValueError("a control character in it")
        return cls(text, tuple(literals), tuple(columns))

    def render(self, values: Mapping[str, str | None] | Sequence[str | None]) -> str:
        """The key for these column values (a mapping, or a sequence in the order of `columns`);
        raises Unusable for a value that makes no usable key."""
        if not isinstance(values, Mapping):
            values = dict(zip(self.columns, values))
        parts = [self.literals[0]]
        for column, literal in zip(self.columns, self.literals[1:]):
            value = values.get(column)
            if value is None:
                raise Unusable(f"{column} is NULL")
            if value == "":
                raise Unusable(f"{column} is empty")
            parts += (value, literal)
        key = "".join(parts)
        why = unusable(key)
        if why is not None:
            raise Unusable(f"{self.text}: {why}")
        return key

    def match(self, key: str) -> dict[str, str] | None:
        """The column values that render `key`, or None if this template does not make it."""
        pattern = "(.+?)".join(re.escape(literal) for literal in self.literals)
        found = re.fullmatch(pattern, key)
        return None if found is None else dict(zip(self.columns, found.groups()))


@dataclass(frozen=True)
class Rule:
    table: str  # as written in the file: "city", or "sales.orders"
    keys: tuple[Template, ...]

    @property
    def schema(self) -> str | None:
        return self.table.split(".")[0] if "." in self.table else None

    @property
    def name(self) -> str:
        return self.table.rsplit(".", 1)[-1]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a template uses, in order of first use: the values a change is stored with."""
        return tuple(dict.fromkeys(column for template in self.keys for column in template.columns))

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(template.prefix for template in self.keys))

    def render(self, values: Sequence[str | None]) -> tuple[list[str], list[str]]:
        """(keys, why not) for one changed row's values (in the order of `columns`): every template's
        key, and for each template that makes none, why."""
        by_column = dict(zip(self.columns, values))
        keys, problems = [], []
        for template in self.keys:
            try:
                keys.append(template.render(by_column))
            except Unusable as exc:
                problems.append(str(exc))
        return keys, problems


@dataclass(frozen=True)
class Rules:
    path: str
    rules: tuple[Rule, ...]

    def rule_for(self, table: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.table == table), None)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(rule.table for rule in self.rules)

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every rule's prefixes, each once."""
        return tuple(dict.fromkeys(prefix for rule in self.rules for prefix in rule.prefixes))

    @property
    def tracking_prefixes(self) -> tuple[str, ...]:
        """The prefixes a near cache tracks: where one starts another, only the shorter one (Redis
        refuses overlapping BCAST prefixes, and the shorter covers the longer)."""
        prefixes = sorted(set(self.prefixes))
        return tuple(p for p in prefixes if not any(q != p and p.startswith(q) for q in prefixes))

    def template(self, shape: str) -> Template:
        """The rules' template that makes the same keys as `shape` (e.g. "cities_{code}"); BadRules if
        none does, since a key that no rule deletes would only ever expire."""
        wanted = Template.parse(shape)
        for rule in self.rules:
            for template in rule.keys:
                if template.shape == wanted.shape:
                    return template
        raise BadRules(f"rules: {self.path}: no rule makes keys like {shape!r}, which the API caches: add a "
                       f"rule whose keys include one (see invalidation.toml)")

    def covers(self, key: str) -> bool:
        """Some rule's prefix starts `key`."""
        return any(key.startswith(prefix) for prefix in self.prefixes)


def parse(text: str, path: str = "invalidation.toml") -> Rules:
    """The rules in `text`; BadRules (one line naming the rule and what to fix) if they are not usable."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadRules(f"rules: {path} is not valid TOML ({exc}): fix the file") from None
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise BadRules(f"rules: {path}: unknown top-level entry {unknown[0]!r}: only [[rule]] tables belong here")
    entries = document.get("rule")
    if not isinstance(entries, list) or not entries:
        raise BadRules(f"rules: {path} has no [[rule]]: add one, e.g. [[rule]] table = \"city\" "
                       f"keys = [\"cities_{{countrycode}}\"]")
    rules: list[Rule] = []
    for number, entry in enumerate(entries, start=1):
        rules.append(_rule(entry, f"rules: {path}: rule {number}", rules))
    return Rules(path, tuple(rules))


def _rule(entry, where: str, before: Iterable[Rule]) -> Rule:
    if not isinstance(entry, dict):
        raise BadRules(f"{where} is not a table: write it as [[rule]] with table = ... and keys = [...]")
    unknown = sorted(set(entry) - {"table", "keys"})
    if unknown:
        raise BadRules(f"{where}: unknown field {unknown[0]!r}: a rule has only table and keys")
    table = entry.get("table")
    if not isinstance(table, str) or not all(_NAME.fullmatch(part) for part in table.split(".")) \
            or table.count(".") > 1:
        raise BadRules(f"{where}: table = {table!r} is not a table name: write a plain lower-case name, "
                       f"optionally with its schema (\"city\", \"sales.orders\")")
    where = f"{where} (table {table})"
    if any(rule.table == table for rule in before):
        raise BadRules(f"{where}: a second rule for {table}: put all of its keys in one rule")
    keys = entry.get("keys")
    if not isinstance(keys, list) or not keys:
        raise BadRules(f"{where}: keys is {'empty' if keys == [] else 'missing'}: list at least one key "
                       f"template, e.g. keys = [\"{table.rsplit('.', 1)[-1]}_{{id}}\"]")
    templates = []
    for text in keys:
        if not isinstance(text, str):
            raise BadRules(f"{where}: key {text!r} is not a string: write templates like \"cities_{{countrycode}}\"")
        try:
            templates.append(Template.parse(text))
        except ValueError as exc:
            raise BadRules(f"{where}: key {text!r}: {exc}") from None
    return Rule(table, tuple(dict.fromkeys(templates)))


def load(path: str | Path) -> Rules:
    """Read and check the rules file (its form only: citycache/tables.py checks them against the database)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRules(f"rules: cannot read {path} ({exc.strerror or exc}): set INVALIDATION_RULES to the "
                       f"rules file") from None
    except UnicodeDecodeError:
        raise BadRules(f"rules: {path} is not UTF-8 text: fix the file") from None
    return parse(text, str(path))
