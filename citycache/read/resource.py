"""A resource the API caches: its key (a template the rules must make, so that writes delete it), a
loader of its data from the database, and the data that means "not found" (cached too, answered 404).

A new resource is a loader here, a route in web/ and a rule in invalidation.toml: the cache-aside path
with leases, herd control, the near cache and the ETag is the same for all (web/cached.py).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from citycache.read.codes import BadCode, normalize_code
from citycache.rules import Rules, Template


@dataclass(frozen=True)
class Resource:
    name: str  # its label in /metrics and its route's name
    key_shape: str  # e.g. "cities_{countrycode}": a rules template with the same literal text must exist
    load: Callable[[object, str], bytes]  # (connection, normalized code) -> the data's JSON bytes
    missing: bytes  # the data when there is nothing under the code

    @functools.cached_property
    def template(self) -> Template:
        return Template.parse(self.key_shape)

    @functools.cached_property
    def _keys(self) -> dict[str, str]:
        return {}

    def key(self, code: str) -> str:
        """The key of a normalized code; remembered, since every hit asks (codes are three letters:
        at most 17,576 of them)."""
        found = self._keys.get(code)
        if found is None:
            found = self._keys[code] = self.template.render([code])
        return found

    def code_of(self, key: str) -> str | None:
        """The normalized code a key of this resource was made from; None if it is not one."""
        found = self.template.match(key)
        if found is None:
            return None
        try:
            code = normalize_code(next(iter(found.values())))
        except BadCode:
            return None
        return code if self.key(code) == key else None

    def check(self, rules: Rules) -> None:
        """BadRules unless some rule makes this resource's keys (else nothing would delete them)."""
        rules.template(self.key_shape)
