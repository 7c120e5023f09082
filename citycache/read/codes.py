"""The country-code rule of the API's resources: ISO 3166 alpha-3, three letters, any case."""
from __future__ import annotations

import re

CODE_RE = re.compile(r"[A-Z]{3}")


class BadCode(ValueError):
    """Not an ISO 3166 alpha-3 shaped code."""


def normalize_code(raw: str) -> str:
    """'bgr' -> 'BGR'; anything that is not three ASCII letters raises BadCode."""
    code = raw.strip().upper() if raw.isascii() else ""
    if not CODE_RE.fullmatch(code):
        raise BadCode(f"country code must be three letters (ISO 3166 alpha-3), got {raw[:16]!r}")
    return code
