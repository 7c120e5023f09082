"""X-Request-ID: keep a sane incoming id or make one; echo it and put it on every log line of the request."""
from __future__ import annotations

import itertools
import os
import re

from flask import Flask, g, request

from citycache.runtime.logs import request_id

HEADER = "X-Request-ID"
# Ids from clients and proxies are logged and echoed: only short, printable, header-safe ones are kept.
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


_state: tuple[int, str, itertools.count] | None = None


def new_id() -> str:
    """32 hex digits, unique without a uuid4 per request: 16 random per process, then a count (whose
    next() is atomic in CPython, so threads need no lock)."""
    global _state
    if _state is None or _state[0] != os.getpid():  # a forked worker must not repeat its parent's ids
        _state = (os.getpid(), os.urandom(8).hex(), itertools.count())
    return f"{_state[1]}{next(_state[2]):016x}"


def choose(incoming: str | None) -> str:
    if incoming and SANE_ID.fullmatch(incoming):
        return incoming
    return new_id()


def init_app(app: Flask) -> None:
    @app.before_request
    def take_id() -> None:
        g.request_id = choose(request.headers.get(HEADER))
        g.request_id_token = request_id.set(g.request_id)

    @app.after_request
    def echo_id(response):
        if "request_id" in g:
            response.headers[HEADER] = g.request_id
        return response

    @app.teardown_request
    def forget_id(exc=None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id.reset(token)
