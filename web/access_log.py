"""gunicorn's access log as structured fields (method, path, status, bytes, duration, request id).

gunicorn formats its access line with a printf template; our JSON formatter wants fields. The line
goes straight to the access log's file handler (web/gunicorn.conf.py): the same line the logging
module would make of it, without a LogRecord and the logger's dispatch for every request. The handler
stays a logging.FileHandler, which gunicorn reopens on SIGUSR1.
"""
from __future__ import annotations

import logging

from gunicorn import glogging

from web.request_id import HEADER

_REQUEST_ID = HEADER.lower()


class JsonAccessLogger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        self._file = next((h for h in self.access_log.handlers if isinstance(h, logging.FileHandler)
                           and hasattr(h.formatter, "info_line")), None)

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        request_id = next((value for name, value in resp.headers if name.lower() == _REQUEST_ID), None)
        fields = {
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": int(status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "request_id": request_id,
        }
        handler = self._file
        if handler is None:  # configured otherwise (a stream, another formatter): the logging module's way
            self.access_log.info("request", extra=fields)
            return
        line = handler.formatter.info_line(self.access_log.name, "request", fields) + "\n"
        handler.acquire()  # the lock gunicorn's reopen takes too
        try:
            if handler.stream is None:
                handler.stream = handler._open()
            handler.stream.write(line)
            handler.stream.flush()
        finally:
            handler.release()
