"""SIGTERM/SIGINT handling for the blocking workers.

The handler only sets a flag. The first signal means "finish what you hold, then stop"; a second
means "stop now". A self-pipe registered with signal.set_wakeup_fd makes a signal end a select()
at once, so a worker blocked waiting for Postgres notices the request immediately.
"""
from __future__ import annotations

import os
import select
import signal
import time


class Shutdown:
    def __init__(self) -> None:
        self.requested = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def install(self) -> "Shutdown":
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise SystemExit(128 + signum)
        self.requested = True

    def fileno(self) -> int:
        """Readable once a signal arrived: put it in the same select() as the work."""
        return self._read_fd

    def clear_wakeups(self) -> None:
        try:
            while os.read(self._read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def sleep(self, seconds: float, *, every: float | None = None, tick=lambda: None) -> None:
        """Sleep that a signal ends at once; with `every`, in slices of that length with `tick()` between."""
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            select.select([self._read_fd], [], [], min(left, every or left))
            self.clear_wakeups()
            tick()

