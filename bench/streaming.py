"""7. Streaming a large object through GET /image/<name>: the serving worker's RSS growth, and
throughput against a GET of the same object straight from the store (a presigned URL).

Both downloads are curl to /dev/null, alternating, so the client costs the same in both.
"""
from __future__ import annotations

import io
import os
import subprocess
import threading
import time

from bench.common import (Figure, Sizes, base_url, children, cpu_ticks, median, need, rss_bytes, settings,
                          web_master_pid)
from citycache.runtime.clients import s3_client

RSS_TARGET_MIB, THROUGHPUT_TARGET = 32, 0.7


class PatternReader(io.RawIOBase):
    """`size` bytes of a repeated 1 MiB block: a big object without holding it in memory."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = bytes(range(256)) * 4096

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        chunk = (self.block * (n // len(self.block) + 1))[:n]
        self.left -= n
        return chunk


def curl(url: str, size: int) -> float:
    """Bytes per second of one download to /dev/null."""
    out = subprocess.run([need("curl", "curl"), "-s", "-f", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
                          url], capture_output=True, text=True, timeout=600, check=True).stdout.split()
    if int(out[0]) != size:
        raise RuntimeError(f"downloaded {out[0]} bytes of {size} from {url}")
    return size / float(out[1])


def watch_rss(pids: list[int], stop: threading.Event, peaks: dict) -> None:
    while not stop.is_set():
        for pid in pids:
            try:
                peaks[pid] = max(peaks.get(pid, 0), rss_bytes(pid))
            except (FileNotFoundError, LookupError):
                pass
        stop.wait(0.02)


def bench(sizes: Sizes) -> Figure:
    s3, bucket, size = s3_client(settings(), read_timeout=300), settings().s3_bucket, sizes.stream_bytes
    name = f"bench-{size}.bin"
    s3.put_object(bucket, name, PatternReader(size), size, content_type="application/octet-stream",
                  part_size=64 << 20)
    try:
        direct_url = s3.presigned_get_object(bucket, name)
        app_url = f"{base_url()}/image/{name}"
        workers = children(web_master_pid())
        direct, app, growth, servers = [], [], [], []
        for _ in range(sizes.stream_rounds):
            direct.append(curl(direct_url, size))
            baseline = {pid: rss_bytes(pid) for pid in workers}
            ticks = {pid: cpu_ticks(pid) for pid in workers}
            peaks: dict = {}
            stop = threading.Event()
            watcher = threading.Thread(target=watch_rss, args=(workers, stop, peaks))
            watcher.start()
            try:
                app.append(curl(app_url, size))
            finally:
                stop.set()
                watcher.join()
            # The serving worker is the one that spent the CPU; the figure is the largest growth of
            # any worker, which is the serving one's unless another grew on its own meanwhile.
            server = max(workers, key=lambda pid: cpu_ticks(pid) - ticks[pid])
            growth.append(max(peaks.get(pid, 0) - baseline[pid] for pid in workers))
            servers.append({"pid": server, "rss_before_mib": round(baseline[server] / (1 << 20), 1),
                            "rss_peak_mib": round(peaks.get(server, 0) / (1 << 20), 1),
                            "cpu_s": (cpu_ticks(server) - ticks[server]) / os.sysconf("SC_CLK_TCK")})
            time.sleep(0.5)
    finally:
        s3.remove_object(bucket, name)
    ratio = median([a / d for a, d in zip(app, direct)])  # each round's pair ran back to back
    grown_mib = max(growth) / (1 << 20)
    met = grown_mib <= RSS_TARGET_MIB and ratio >= THROUGHPUT_TARGET
    return Figure(
        7, "streaming: worker RSS growth", round(grown_mib, 1), "MiB",
        f"<= {RSS_TARGET_MIB} MiB; throughput >= {THROUGHPUT_TARGET} x direct", met,
        details={"bytes": size, "rounds": sizes.stream_rounds,
                 "rss_growth_mib": [round(g / (1 << 20), 1) for g in growth],
                 "throughput_ratio": round(ratio, 3), "serving_worker": servers,
                 "app_mib_s": [round(v / (1 << 20), 1) for v in app],
                 "direct_mib_s": [round(v / (1 << 20), 1) for v in direct]},
        note=f"{size >> 20} MiB: through the app {median(app) / (1 << 20):.0f} MiB/s vs direct "
             f"{median(direct) / (1 << 20):.0f} MiB/s = {ratio:.2f}x")
