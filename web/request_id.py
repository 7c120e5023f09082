"""X-Request-ID: keep a sane incoming id or make one; echo it and put it on every log line of the request."""
from __future__ import annotations

import re
import uuid

from flask import Flask, g, request

from citycache.logs import request_id

HEADER = "X-Request-ID"
# Ids from clients and proxies are logged and echoed: only short, printable, header-safe ones are kept.
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def choose(incoming: str | None) -> str:
    if incoming and SANE_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


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
