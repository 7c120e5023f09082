"""Unit tests of the event codec, the country-code rule and the outbox's expansion (no services needed)."""
import json

import pytest

from citycache import events, rules
from citycache.events import BadEvent, Invalidation
from citycache.read.cities import CITIES
from citycache.read.codes import BadCode, normalize_code
from citycache.read.countries import COUNTRIES
from citycache.write.outbox import to_changes
from tests.support import ROOT

RULES = rules.parse((ROOT / "invalidation.toml").read_text())


@pytest.mark.parametrize("raw, code", [("BGR", "BGR"), ("bgr", "BGR"), ("bGr", "BGR"), (" usa ", "USA")])
def test_codes_are_case_insensitive(raw, code):
    assert normalize_code(raw) == code


@pytest.mark.parametrize("raw", ["", "BG", "BGRX", "B1R", "ÄBC", "B-R", "bg r", "\x00BG", "ｂｇｒ"])
def test_bad_codes_are_refused(raw):
    with pytest.raises(BadCode):
        normalize_code(raw)


def test_the_resources_keys():
    assert CITIES.key("BGR") == "cities_BGR" and COUNTRIES.key("BGR") == "country_BGR"
    assert CITIES.code_of("cities_BGR") == "BGR" and CITIES.code_of("cities_bgr") is None
    assert COUNTRIES.code_of("cities_BGR") is None
    assert not rules.lease_key("cities_BGR").startswith("cities_")  # a scan of cities_* never sees leases


def test_a_cities_event_keeps_the_seeds_contract_and_adds_the_key():
    value = events.encode(Invalidation("cities_BGR"))
    assert json.loads(value) == {"action": "invalidate_cache", "code": "BGR", "key": "cities_BGR"}
    assert Invalidation("cities_BGR").message_key == b"cities_BGR"


def test_other_keys_carry_only_the_key():
    assert json.loads(events.encode(Invalidation("country_BGR"))) == {"action": "invalidate_cache", "key": "country_BGR"}


def test_event_round_trip_keeps_extra_fields():
    event = Invalidation("country_BGR", event_id=7, committed_at=1.5, published_at=2.25, last_committed_at=1.75)
    assert events.decode(events.encode(event)) == event


def test_invalidate_all_names_its_prefixes_and_one_without_means_every_rule():
    event = events.everything(("cities_", "country_"))
    assert json.loads(events.encode(event)) == {"action": "invalidate_all", "prefixes": ["cities_", "country_"]}
    assert events.decode(events.encode(event)) == event and event.message_key == b"*"
    assert events.decode(b'{"action":"invalidate_all"}').prefixes is None


def test_a_message_from_before_the_rules_still_reads_as_its_cities_key():
    assert events.decode(b'{"action": "invalidate_cache", "code": "bgr", "extra": 1}').key == "cities_BGR"


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"\xff\xfe", b"[]", b"null", b'"BGR"', b'{"code":"BGR"}',
    b'{"action":"drop_tables","code":"BGR"}', b'{"action":"invalidate_cache"}',
    b'{"action":"invalidate_cache","code":"*"}', b'{"action":"invalidate_cache","code":12}',
    b'{"action":"invalidate_cache","code":"BG"}', b'{"action":"invalidate_cache","code":"BGR","event_id":"x"}',
    b'{"action":"invalidate_cache","key":""}', b'{"action":"invalidate_cache","key":"a\\u0000b"}',
    b'{"action":"invalidate_cache","key":7}', b'{"action":"invalidate_all","prefixes":"cities_"}',
    b'{"action":"invalidate_all","prefixes":[""]}', None,
])
def test_malformed_events_raise_bad_event(raw):
    with pytest.raises(BadEvent):
        events.decode(raw)


def test_outbox_rows_become_one_event_per_key_with_first_and_last_commit():
    # As outbox.take returns them: per table and values, with first and last commit time and count.
    taken = [("city", ["BGR"], 9.0, 10.0, 2), ("country", ["BGR"], 9.5, 12.5, 1), ("city", ["DEU"], 11.0, 11.0, 1),
             ("elsewhere", ["X"], 12.0, 12.0, 1), ("countrylanguage", None, 13.0, 13.0, 1),
             ("city", [None], 14.0, 14.0, 1)]
    batch, outside = to_changes(taken, RULES)
    found = {e.key: e for e in batch.events()}
    assert list(found) == ["cities_BGR", "country_BGR", "cities_DEU", "country_DEU", None]
    assert found["country_BGR"] == Invalidation("country_BGR", committed_at=9.0, last_committed_at=12.5)
    assert found[None].prefixes == ("country_",)
    assert outside == ["elsewhere"]
    assert [(u.table, u.why) for u in batch.unusable] == [("city", "countrycode is NULL")] * 2
