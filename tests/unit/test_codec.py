"""Unit tests of the pure rules shared by the API and the workers (no services needed)."""
import json

import pytest

from citycache import events
from citycache.events import ALL_CODES, BadEvent, Invalidation
from citycache.keys import BadCode, cache_key, code_from_cache_key, lease_key, normalize_code
from citycache.write.outbox import to_events


@pytest.mark.parametrize("raw, code", [("BGR", "BGR"), ("bgr", "BGR"), ("bGr", "BGR"), (" usa ", "USA")])
def test_codes_are_case_insensitive(raw, code):
    assert normalize_code(raw) == code


@pytest.mark.parametrize("raw", ["", "BG", "BGRX", "B1R", "ÄBC", "B-R", "bg r", "\x00BG", "ｂｇｒ"])
def test_bad_codes_are_refused(raw):
    with pytest.raises(BadCode):
        normalize_code(raw)


def test_cache_key_rule():
    assert cache_key("BGR") == "cities_BGR"
    assert code_from_cache_key(b"cities_BGR") == "BGR"
    assert lease_key("BGR") != cache_key("BGR")
    assert not lease_key("BGR").startswith("cities_")  # a scan of cities_* never sees leases


def test_event_wire_format_matches_the_contract():
    value = events.encode(Invalidation("BGR"))
    assert json.loads(value) == {"action": "invalidate_cache", "code": "BGR"}
    assert Invalidation("BGR").key == b"BGR"


def test_event_round_trip_keeps_extra_fields():
    event = Invalidation("BGR", event_id=7, committed_at=1.5, published_at=2.25, last_committed_at=1.75)
    assert events.decode(events.encode(event)) == event


def test_invalidate_all_round_trip():
    assert json.loads(events.encode(Invalidation(ALL_CODES))) == {"action": "invalidate_all"}
    assert events.decode(b'{"action":"invalidate_all"}').code == ALL_CODES


def test_seed_shaped_message_decodes():
    assert events.decode(b'{"action": "invalidate_cache", "code": "bgr", "extra": 1}').code == "BGR"


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"\xff\xfe", b"[]", b"null", b'"BGR"', b'{"code":"BGR"}',
    b'{"action":"drop_tables","code":"BGR"}', b'{"action":"invalidate_cache"}',
    b'{"action":"invalidate_cache","code":"*"}', b'{"action":"invalidate_cache","code":12}',
    b'{"action":"invalidate_cache","code":"BG"}', b'{"action":"invalidate_cache","code":"BGR","event_id":"x"}',
    None,
])
def test_malformed_events_raise_bad_event(raw):
    with pytest.raises(BadEvent):
        events.decode(raw)


def test_outbox_rows_coalesce_per_code():
    # As outbox.take returns them: per code as stored, with its first and last commit time and count.
    taken = [("BGR", 9.0, 10.0, 2), ("DEU", 11.0, 11.0, 1), ("bgr ", 9.5, 12.5, 4), ("bad!", 12.0, 12.0, 1),
             ("*", 13.0, 13.0, 1)]
    batch, bad = to_events(taken)
    assert [e.code for e in batch] == ["BGR", "DEU", "*"]
    assert batch[0] == Invalidation("BGR", committed_at=9.0, last_committed_at=12.5)
    assert bad == ["bad!"]
