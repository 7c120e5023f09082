"""Every error is JSON: {"error": "...", "status": N}. A dependency that is down is a 503, not a 500."""
from __future__ import annotations

import logging

import psycopg2
import psycopg2.pool
import redis
import urllib3.exceptions
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

UNAVAILABLE = (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.pool.PoolError,
               redis.ConnectionError, redis.TimeoutError, urllib3.exceptions.HTTPError)


def json_error(status: int, message: str):
    response = jsonify(error=message, status=status)
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = json_error(exc.code or 500, exc.description or exc.name)
        for name, value in exc.get_headers():  # e.g. Allow on a 405 (RFC 9110 requires it)
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, UNAVAILABLE):
            log.warning("dependency unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
            return json_error(503, "a backing service is unavailable; try again shortly")
        log.exception("unhandled error")
        return json_error(500, "internal error")
