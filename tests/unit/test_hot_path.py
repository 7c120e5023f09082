"""Unit tests of the hot path's pure parts: the near cache's byte bound and tickets, the cached value
with its ETag, the log line encoder and request ids (no services needed)."""
import json
import logging
import re

from citycache.read.entry import Entry
from citycache.runtime.logs import JsonFormatter, encode
from citycache.read.near_cache import NearCache
from web.request_id import choose


def test_memory_is_bounded_in_bytes_least_recently_used_first():
    cache = NearCache(max_bytes=250)
    cache.connected()
    for key in ("a", "b"):
        assert cache.fill(key, cache.ticket(key), key, 100)
    cache.get("a")  # "b" is now the least recently used
    assert cache.fill("c", cache.ticket("c"), "c", 100)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("a", None, "c")
    assert cache.bytes_held == 200
    assert not cache.fill("huge", cache.ticket("huge"), "x", 251)  # larger than the whole budget
    cache.lost()
    assert cache.get("a") is None and cache.bytes_held == 0


def test_a_cached_value_carries_its_etag_and_reads_without_it():
    cities = Entry(b'[{"name":"A","population":1}]')
    stored = cities.cached()
    assert stored.startswith(cities.etag.encode()) and stored.endswith(cities.data)
    again = Entry.from_cached(stored)
    assert (again.data, again.etag) == (cities.data, cities.etag)
    legacy = Entry.from_cached(cities.data)  # a value written before the ETag was stored
    assert (legacy.data, legacy.etag) == (cities.data, cities.etag)
    assert again.body("cache") == b'{"source":"cache","data":[{"name":"A","population":1}]}'


def test_a_ticket_from_before_an_invalidation_or_a_reconnect_is_void():
    cache = NearCache(1000)
    assert cache.ticket("k") is None  # not live yet: nothing may be stored
    cache.connected()
    before = cache.ticket("k")
    cache.invalidate(["k"])
    assert not cache.fill("k", before, "old", 3)
    again = cache.ticket("k")
    cache.invalidate(["other"])  # another key's invalidation does not void this ticket
    assert cache.fill("k", again, "new", 3) and cache.get("k") == "new"
    stale = cache.ticket("k")
    cache.lost()
    cache.connected()
    assert not cache.fill("k", stale, "old", 3) and cache.get("k") is None


def test_log_lines_read_as_the_json_module_writes_them():
    line = {"ts": "2026-01-01T00:00:00.000Z", "level": "info", "msg": 'a "quoted" word', "n": 3, "x": 1.5,
            "none": None, "ok": True, "obj": object}
    assert encode(line) == json.dumps(line, default=str)
    assert json.loads(encode({"big": 2 ** 70})) == {"big": 2 ** 70}  # beyond orjson: the general way


def test_the_access_line_written_directly_is_the_line_the_logging_module_makes():
    formatter, fields = JsonFormatter("web"), {"method": "GET", "path": "/cities/BGR", "status": 200, "query": None}
    record = logging.makeLogRecord({"name": "gunicorn.access", "levelname": "INFO", "msg": "request", **fields})
    direct = json.loads(formatter.info_line("gunicorn.access", "request", fields))
    made = json.loads(formatter.format(record))
    assert direct.pop("ts")[:10] == made.pop("ts")[:10]  # the same day; the clock moved on
    assert list(direct) == list(made) and direct == made


def test_request_ids_are_32_hex_and_unique():
    ids = {choose(None) for _ in range(1000)}
    assert len(ids) == 1000 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert choose("kept-1") == "kept-1"
