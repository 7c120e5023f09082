"""A pool of autocommit Postgres connections that keeps them open between uses.

psycopg2's own pools connect `minconn` at construction (which fails while Postgres is down) and close
every connection handed back while they hold `minconn` or more: with minconn=0, each use paid a
backend fork and a login. This one connects nothing until first asked, keeps every connection handed
back for the next use, and replaces the broken ones: a process starts (and answers 503) while
Postgres is down, and its steady state is a few sessions that last.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg2
import psycopg2.extensions
from psycopg2.pool import PoolError

log = logging.getLogger(__name__)
T = TypeVar("T")
# What a connection that lost its server raises: the first use after a restart, or after it was killed.
LOST = (psycopg2.OperationalError, psycopg2.InterfaceError)


class PgPool:
    def __init__(self, connect: Callable[[], psycopg2.extensions.connection], size: int,
                 wait_seconds: float = 3.0) -> None:
        """`connect()` makes a connection; at most `size` exist at once, and a caller finding all of
        them busy waits up to `wait_seconds` for one (then PoolError, which the API answers with 503)."""
        self._connect, self.size, self.wait_seconds = connect, size, wait_seconds
        self._idle: list[psycopg2.extensions.connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self.connects = 0  # connections made so far: as many as were ever used at once, in steady state

    @contextlib.contextmanager
    def connection(self):
        """An idle connection (the one used last), or a new one while fewer than `size` exist."""
        if not self._slots.acquire(timeout=self.wait_seconds):
            raise PoolError(f"all {self.size} Postgres connections busy for {self.wait_seconds:g} s")
        try:
            conn = self._take()
            try:
                yield conn
            finally:
                self._give_back(conn)
        finally:
            self._slots.release()

    def query(self, work: Callable[[psycopg2.extensions.connection], T]) -> T:
        """`work(conn)`, once more on a new connection if the one it got had lost its server."""
        with self.connection() as conn:
            try:
                return work(conn)
            except LOST:
                if not conn.closed:  # an error of the query itself: not retried
                    raise
        log.info("postgres connection was lost, retrying on a new one")
        with self.connection() as conn:
            return work(conn)

    def close(self) -> None:
        self._discard_idle()

    def _take(self) -> psycopg2.extensions.connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = self._connect()
        conn.autocommit = True
        self.connects += 1
        return conn

    def _give_back(self, conn) -> None:
        if conn.closed:
            # It lost its server (a restart, most likely): the idle ones had the same server.
            self._discard_idle()
        elif conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            with self._lock:
                self._idle.append(conn)
        else:  # left inside a transaction by a failed statement: not handed to the next user
            conn.close()

    def _discard_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
