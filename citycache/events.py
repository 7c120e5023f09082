"""The invalidation event: channel and topic names, and the codec used by both workers.

Kafka value: {"action": "invalidate_cache", "code": "BGR", ...} keyed by the code, so one code's
events stay in order on one partition. After TRUNCATE: {"action": "invalidate_all"} keyed "*".
Extra fields (event id, the first and last commit times it covers) ride along for tracing and latency figures.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from citycache.keys import BadCode, normalize_code

CHANNEL = "city_updates"
TOPIC = "city_updates"
INVALIDATE = "invalidate_cache"
INVALIDATE_ALL = "invalidate_all"
ALL_CODES = "*"


class BadEvent(ValueError):
    """A Kafka value or NOTIFY payload that is not a valid invalidation."""


@dataclass(frozen=True)
class Invalidation:
    code: str  # a normalized country code, or ALL_CODES
    event_id: int | None = None
    committed_at: float | None = None  # epoch seconds of the earliest database commit it covers
    published_at: float | None = None  # epoch seconds when pg_listener handed it to Kafka
    last_committed_at: float | None = None  # epoch seconds of the latest commit it covers

    @property
    def action(self) -> str:
        return INVALIDATE_ALL if self.code == ALL_CODES else INVALIDATE

    @property
    def key(self) -> bytes:
        return self.code.encode()


def parse_code(raw: str) -> str:
    """A code as written by the trigger (NOTIFY payload, outbox row): 'BGR' or '*'."""
    if raw == ALL_CODES:
        return ALL_CODES
    try:
        return normalize_code(raw)
    except BadCode as exc:
        raise BadEvent(str(exc)) from None


def encode(event: Invalidation) -> bytes:
    body: dict = {"action": event.action}
    if event.code != ALL_CODES:
        body["code"] = event.code
    for field in ("event_id", "committed_at", "published_at", "last_committed_at"):
        value = getattr(event, field)
        if value is not None:
            body[field] = value
    return json.dumps(body, separators=(",", ":")).encode()


def decode(raw: bytes | None) -> Invalidation:
    try:
        body = json.loads(raw.decode("utf-8"))  # type: ignore[union-attr]
    except (AttributeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent(f"not a JSON object: {exc}") from None
    if not isinstance(body, dict):
        raise BadEvent("not a JSON object")
    action = body.get("action")
    if action == INVALIDATE_ALL:
        code = ALL_CODES
    elif action == INVALIDATE:
        if not isinstance(body.get("code"), str):
            raise BadEvent("invalidate_cache without a string code")
        code = parse_code(body["code"])
        if code == ALL_CODES:
            raise BadEvent("invalidate_cache needs a country code")
    else:
        raise BadEvent(f"unknown action {action!r}")
    return Invalidation(
        code=code,
        event_id=_number(body, "event_id", int),
        committed_at=_number(body, "committed_at", float),
        published_at=_number(body, "published_at", float),
        last_committed_at=_number(body, "last_committed_at", float),
    )


def _number(body: dict, field: str, kind: type):
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadEvent(f"{field} must be a number")
    return kind(value)
