"""A 1 GiB image streams through the API with flat memory in the gunicorn workers."""
import hashlib
import io
import os
from pathlib import Path

import pytest

from tests.support import supervisorctl

SIZE = 1 << 30
BLOCK = os.urandom(1 << 20)
NAME = "test-streaming-1gib.bin"
MiB = 1 << 20


class Pattern(io.RawIOBase):
    """SIZE bytes of BLOCK repeated, produced as read: the test holds no more than one part of them."""

    def __init__(self) -> None:
        self.pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = SIZE - self.pos if n is None or n < 0 else min(n, SIZE - self.pos)
        out = bytearray()
        while len(out) < n:
            start = (self.pos + len(out)) % len(BLOCK)
            out += BLOCK[start:start + n - len(out)]
        self.pos += n
        return bytes(out)


def expected_sha256() -> str:
    digest, source = hashlib.sha256(), Pattern()
    while chunk := source.read(8 * MiB):
        digest.update(chunk)
    return digest.hexdigest()


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def gunicorn_workers() -> list[int]:
    master = int(supervisorctl("pid", "web").stdout.strip())
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


@pytest.fixture(scope="module")
def big_object(s3, settings):
    """Uploaded once for the module (a minute of I/O on a small machine)."""
    s3.put_object(settings.s3_bucket, NAME, Pattern(), SIZE, content_type="application/octet-stream",
                  part_size=64 * MiB)
    yield f"/image/{NAME}"
    s3.remove_object(settings.s3_bucket, NAME)


@pytest.mark.slow
def test_a_1_gib_object_streams_whole_with_flat_worker_memory(base_url, http, big_object):
    workers = gunicorn_workers()
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = {pid: kib(pid, "VmRSS") for pid in workers}

    digest, received = hashlib.sha256(), 0
    with http.get(base_url + big_object, stream=True, timeout=120) as response:
        assert response.status_code == 200 and response.headers["Content-Length"] == str(SIZE)
        for chunk in response.iter_content(MiB):
            digest.update(chunk)
            received += len(chunk)
    assert received == SIZE and digest.hexdigest() == expected_sha256()

    growth_mib = max(kib(pid, "VmHWM") - before[pid] for pid in workers) / 1024
    print(f"peak growth of a gunicorn worker while streaming 1 GiB: {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"a gunicorn worker's peak memory grew by {growth_mib:.0f} MiB while streaming 1 GiB"


@pytest.mark.slow
def test_a_range_near_the_end_of_1_gib_is_served_from_the_store(base_url, http, big_object):
    response = http.get(base_url + big_object, headers={"Range": f"bytes={SIZE - 1000}-"}, timeout=30)
    assert response.status_code == 206 and response.headers["Content-Range"] == f"bytes {SIZE - 1000}-{SIZE - 1}/{SIZE}"
    pattern = Pattern()
    pattern.pos = SIZE - 1000
    assert response.content == pattern.read(1000)
