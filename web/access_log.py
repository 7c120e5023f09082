"""gunicorn's access log as structured fields (method, path, status, bytes, duration, request id).

gunicorn formats its access line with a printf template; our JSON formatter wants fields, so this
logger class hands them to the `gunicorn.access` logger as `extra` instead.
"""
from __future__ import annotations

from gunicorn import glogging

from web.request_id import HEADER

_REQUEST_ID = HEADER.lower()


class JsonAccessLogger(glogging.Logger):
    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        request_id = next((value for name, value in resp.headers if name.lower() == _REQUEST_ID), None)
        self.access_log.info("request", extra={
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": int(status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "request_id": request_id,
        })
