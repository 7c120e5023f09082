"""The country-code rule and the cache-key rule: the one place that says what `cities_<CODE>` is."""
from __future__ import annotations

import re

CODE_RE = re.compile(r"[A-Z]{3}")
CACHE_KEY_PREFIX = "cities_"
CACHE_KEY_PATTERN = CACHE_KEY_PREFIX + "*"
# A lease marks "one reader is filling this key"; an invalidation deletes it with the key (see cache.py).
# Its hash tag is the whole cache key, so in a Redis Cluster both live in one slot (the Lua scripts
# and the DEL touch both at once): `{cities_BGR}:lease` hashes exactly like `cities_BGR`.
LEASE_KEY_FORMAT = "{%s}:lease"
LEASE_KEY_PATTERN = LEASE_KEY_FORMAT % (CACHE_KEY_PREFIX + "*")


class BadCode(ValueError):
    """Not an ISO 3166 alpha-3 shaped code."""


def normalize_code(raw: str) -> str:
    """'bgr' -> 'BGR'; anything that is not three ASCII letters raises BadCode."""
    code = raw.strip().upper() if raw.isascii() else ""
    if not CODE_RE.fullmatch(code):
        raise BadCode(f"country code must be three letters (ISO 3166 alpha-3), got {raw[:16]!r}")
    return code


def cache_key(code: str) -> str:
    return CACHE_KEY_PREFIX + code


def lease_key(code: str) -> str:
    return LEASE_KEY_FORMAT % cache_key(code)


def code_from_cache_key(key: str | bytes) -> str:
    text = key.decode() if isinstance(key, bytes) else key
    if not text.startswith(CACHE_KEY_PREFIX):
        raise ValueError(f"not a cache key: {text!r}")
    return text[len(CACHE_KEY_PREFIX):]
