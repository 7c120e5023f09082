"""HTTP caching: ETag/Last-Modified/Cache-Control, conditional GET (304) and byte ranges (206, 416)."""
import io
import os
from email.utils import format_datetime, parsedate_to_datetime

import pytest

NAME = "test-caching.bin"
DATA = os.urandom(200_000 + 7)  # several stream chunks


@pytest.fixture
def image(s3, settings):
    s3.put_object(settings.s3_bucket, NAME, io.BytesIO(DATA), len(DATA), content_type="application/octet-stream")
    yield f"/image/{NAME}"
    s3.remove_object(settings.s3_bucket, NAME)


def test_image_carries_validators_and_cache_control(base_url, http, image):
    response = http.get(base_url + image)
    assert response.status_code == 200 and response.content == DATA
    assert response.headers["ETag"].startswith('"') and response.headers["ETag"].endswith('"')
    assert parsedate_to_datetime(response.headers["Last-Modified"])
    assert "max-age" in response.headers["Cache-Control"]
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Length"] == str(len(DATA))


def test_image_conditional_get(base_url, http, image):
    first = http.get(base_url + image)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"other", {etag}'}, {"If-None-Match": "*"},
                    {"If-Modified-Since": modified}):
        response = http.get(base_url + image, headers=headers)
        assert response.status_code == 304, headers
        assert response.content == b"" and response.headers["ETag"] == etag
    older = format_datetime(parsedate_to_datetime(modified).replace(year=2000), usegmt=True)
    for headers in ({"If-None-Match": '"other"'}, {"If-Modified-Since": older},
                    # If-None-Match wins over If-Modified-Since (RFC 9110)
                    {"If-None-Match": '"other"', "If-Modified-Since": modified}):
        response = http.get(base_url + image, headers=headers)
        assert response.status_code == 200 and response.content == DATA, headers


@pytest.mark.parametrize("header, start, stop", [
    ("bytes=0-9", 0, 10), ("bytes=100-", 100, len(DATA)), ("bytes=-5", len(DATA) - 5, len(DATA)),
    ("bytes=65530-65545", 65530, 65546), ("bytes=199990-999999", 199990, len(DATA)),
])
def test_image_single_range_is_206_with_exactly_those_bytes(base_url, http, image, header, start, stop):
    response = http.get(base_url + image, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == DATA[start:stop]
    assert response.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(DATA)}"
    assert response.headers["Content-Length"] == str(stop - start)


@pytest.mark.parametrize("header", [f"bytes={len(DATA)}-", f"bytes={len(DATA) + 10}-{len(DATA) + 20}"])
def test_image_unsatisfiable_range_is_416(base_url, http, image, header):
    response = http.get(base_url + image, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"
    assert "range not satisfiable" in response.json()["error"]


@pytest.mark.parametrize("headers", [{"Range": "bytes=5-2"}, {"Range": "bytes=0-1,5-6"}, {"Range": "lines=1-2"},
                                     {"Range": "bytes=0-9", "If-Range": '"stale-etag"'}])
def test_image_ignored_ranges_send_the_whole_object(base_url, http, image, headers):
    response = http.get(base_url + image, headers=headers)
    assert response.status_code == 200 and response.content == DATA


def test_image_if_range_with_the_current_etag_honours_the_range(base_url, http, image):
    etag = http.get(base_url + image).headers["ETag"]
    response = http.get(base_url + image, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert response.status_code == 206 and response.content == DATA[:4]


def test_cities_etag_and_304(base_url, http, db, test_cities, invalidated):
    test_cities("QQA", ("Alpha", 300))
    first = http.get(f"{base_url}/cities/QQA")  # from the database
    second = http.get(f"{base_url}/cities/QQA")  # from the cache
    assert (first.json()["source"], second.json()["source"]) == ("db", "cache")
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and second.headers["ETag"] == etag, "same cities, same entity tag"
    assert first.headers["Cache-Control"] == "no-cache"
    not_modified = http.get(f"{base_url}/cities/QQA", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["ETag"] == etag
    with invalidated("QQA"), db.cursor() as cur:
        cur.execute("UPDATE city SET population = 301 WHERE countrycode = 'QQA'")
    changed = http.get(f"{base_url}/cities/QQA", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["data"] == [{"name": "Alpha", "population": 301}]

