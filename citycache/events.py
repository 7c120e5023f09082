"""The invalidation event on the Kafka topic, and the codec both workers and the CLI use.

One message per cache key, keyed by the key (one key's events stay in order on one partition):
    {"action": "invalidate_cache", "key": "country_BGR", ...}
A `cities_` key also carries the country code, as the seed's consumers expect (DESIGN.md, 3):
    {"action": "invalidate_cache", "code": "BGR", "key": "cities_BGR", ...}
After a TRUNCATE, keyed "*", the prefixes it wipes:
    {"action": "invalidate_all", "prefixes": ["cities_", "country_"], ...}
Extra fields (event id, the first and last commit times it covers, the publish time) ride along for
tracing and latency figures. A message without `key` (from a version before the rules) still reads:
its code means `cities_<CODE>`, and an invalidate_all without prefixes means every rule's prefix.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from citycache.rules import unusable

TOPIC = "city_updates"
INVALIDATE = "invalidate_cache"
INVALIDATE_ALL = "invalidate_all"
ALL_KEY = b"*"
# The seed's messages named a country code, and its only key was cities_<CODE>.
CODE_KEY_PREFIX = "cities_"
_CODE = re.compile(r"[A-Z]{3}")


class BadEvent(ValueError):
    """A Kafka value that is not a valid invalidation."""


@dataclass(frozen=True)
class Invalidation:
    key: str | None  # the cache key; None for an invalidate_all
    prefixes: tuple[str, ...] | None = None  # invalidate_all: what it wipes (None: every rule's prefix)
    event_id: int | None = None
    committed_at: float | None = None  # epoch seconds of the earliest database commit it covers
    published_at: float | None = None  # epoch seconds when pg_listener handed it to Kafka
    last_committed_at: float | None = None  # epoch seconds of the latest commit it covers

    @property
    def action(self) -> str:
        return INVALIDATE_ALL if self.key is None else INVALIDATE

    @property
    def message_key(self) -> bytes:
        return ALL_KEY if self.key is None else self.key.encode()

    @property
    def code(self) -> str | None:
        """The country code of a `cities_` key (the seed's contract), else None."""
        if self.key is not None and self.key.startswith(CODE_KEY_PREFIX):
            code = self.key[len(CODE_KEY_PREFIX):]
            return code if _CODE.fullmatch(code) else None
        return None


def everything(prefixes: tuple[str, ...] | None, **times) -> Invalidation:
    return Invalidation(None, prefixes=tuple(prefixes) if prefixes is not None else None, **times)


def encode(event: Invalidation, published_at: float | None = None) -> bytes:
    """The Kafka value; `published_at` stamps the send time without copying the event."""
    body: dict = {"action": event.action}
    if event.key is None:
        if event.prefixes is not None:
            body["prefixes"] = list(event.prefixes)
    else:
        if event.code is not None:
            body["code"] = event.code
        body["key"] = event.key
    for field, value in (("event_id", event.event_id), ("committed_at", event.committed_at),
                         ("published_at", event.published_at if published_at is None else published_at),
                         ("last_committed_at", event.last_committed_at)):
        if value is not None:
            body[field] = value
    # orjson: compact JSON in UTF-8, as json.dumps(separators=(",", ":"), ensure_ascii=False) writes it,
    # several times faster (two messages per city change at thousands of commits a second).
    return orjson.dumps(body)


def decode(raw: bytes | None) -> Invalidation:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise BadEvent("not a JSON object: no value")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # invalid UTF-8 included
        raise BadEvent(f"not a JSON object: {exc}") from None
    if not isinstance(body, dict):
        raise BadEvent("not a JSON object")
    times = {field: _number(body, field, kind) for field, kind in (
        ("event_id", int), ("committed_at", float), ("published_at", float), ("last_committed_at", float))}
    action = body.get("action")
    if action == INVALIDATE_ALL:
        prefixes = body.get("prefixes")
        if prefixes is not None and not (isinstance(prefixes, list) and prefixes
                                         and all(isinstance(p, str) and p for p in prefixes)):
            raise BadEvent("invalidate_all: prefixes must be a list of non-empty strings")
        return everything(prefixes, **times)
    if action != INVALIDATE:
        raise BadEvent(f"unknown action {action!r}")
    key = body.get("key")
    if key is None:  # a message of the seed's shape: a code
        code = body.get("code")
        if not isinstance(code, str) or not _CODE.fullmatch(code.strip().upper()):
            raise BadEvent("invalidate_cache needs a key (or, as before the rules, a three-letter code)")
        key = CODE_KEY_PREFIX + code.strip().upper()
    if not isinstance(key, str) or not key:
        raise BadEvent("invalidate_cache: key must be a non-empty string")
    why = unusable(key)
    if why is not None:
        raise BadEvent(f"invalidate_cache: key has {why}")
    return Invalidation(key, **times)


def _number(body: dict, field: str, kind: type):
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadEvent(f"{field} must be a number")
    return kind(value)
