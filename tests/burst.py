"""A write burst with readers: single-row UPDATEs of a rule's table (city by default, or
countrylanguage) under test codes while readers keep both resources of those codes cached.

Readers fill the cache with the rows as they are between writes; every write after a fill must
invalidate it. If one invalidation is lost, a cached value is left behind that the database no
longer agrees with, and the consistency checker finds it.
"""
from __future__ import annotations

import random
import threading
import time

import psycopg2
import requests

from tests.subjects import CITY, Subject
from tests.support import Background

ROUTES = ("/cities", "/countries")


class WriteBurst(Background):
    def __init__(self, database_url: str, base_url: str, codes: list[str], write_interval: float = 0.01,
                 subject: Subject = CITY):
        self.subject = subject
        self.database_url = database_url
        self.base_url = base_url
        self.codes = codes
        self.write_interval = write_interval
        self.attempted = 0
        self.committed = 0
        self.reads = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, daemon=True)] + [
            threading.Thread(target=self._read, daemon=True) for _ in range(2)]

    def _write(self) -> None:
        rng, conn = random.Random(7), None
        while not self._stop.is_set():
            self.attempted += 1
            try:
                if conn is None or conn.closed:
                    conn = psycopg2.connect(self.database_url, connect_timeout=2)
                    conn.autocommit = True
                with conn.cursor() as cur:
                    self.subject.write(cur, "burst", value=rng.randrange(1_000_000), code=rng.choice(self.codes),
                                       n=rng.randrange(3))
                self.committed += 1
            except psycopg2.Error:  # Postgres is the fault under test: keep trying
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self.write_interval)
        if conn is not None:
            conn.close()

    def _read(self) -> None:
        with requests.Session() as http:
            while not self._stop.is_set():
                try:
                    http.get(f"{self.base_url}{random.choice(ROUTES)}/{random.choice(self.codes)}", timeout=5)
                    self.reads += 1
                except requests.RequestException:
                    pass

    def await_writes(self, more: int, *, committed: bool = True, timeout: float = 60.0) -> None:
        """Block until `more` further writes were committed (or attempted, while Postgres is down)."""
        counter = (lambda: self.committed) if committed else (lambda: self.attempted)
        target, deadline = counter() + more, time.monotonic() + timeout
        while counter() < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {counter()} of {target} writes after {timeout:.0f} s")
            time.sleep(0.01)
