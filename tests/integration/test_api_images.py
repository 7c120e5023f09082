"""GET /image/<name>: bytes straight from the S3 store, with type and length; bad names refused."""
import io
import os

import pytest


@pytest.fixture
def uploaded(s3, settings):
    """An object of random bytes put into the bucket through the S3 API, removed afterwards."""
    names = []

    def put(name: str, data: bytes, content_type: str):
        s3.put_object(settings.s3_bucket, name, io.BytesIO(data), len(data), content_type=content_type)
        names.append(name)

    yield put
    for name in names:
        s3.remove_object(settings.s3_bucket, name)


def test_image_round_trip_byte_for_byte(base_url, http, uploaded):
    data = os.urandom(3 * 1024 * 1024 + 17)  # several stream chunks, not a round number
    uploaded("test-roundtrip.png", data, "image/png")
    response = http.get(f"{base_url}/image/test-roundtrip.png")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Length"] == str(len(data))


def test_seeded_sample_image_is_served(base_url, http):
    response = http.get(f"{base_url}/image/bulgaria.svg")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/svg+xml"
    assert b"<svg" in response.content


def test_missing_image_is_404_json(base_url, http):
    response = http.get(f"{base_url}/image/no-such-image.png")
    assert response.status_code == 404
    assert response.json()["error"] == "no image named no-such-image.png"


@pytest.mark.parametrize("name", [
    "..%2F..%2Fetc%2Fpasswd", "a/b.png", "%2e%2e", ".env", "a%00b", "a%0Ab", "a%5Cb", "x" * 129, "caf%C3%A9.png",
])
def test_bad_names_get_400_json(base_url, http, name):
    response = http.get(f"{base_url}/image/{name}")
    assert response.status_code == 400
    assert "image name" in response.json()["error"]
