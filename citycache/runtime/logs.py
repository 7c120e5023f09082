"""One JSON line per event on stdout, with the component name on every line (and the request id
on every line logged while a request is being served)."""
from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import os
import time

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# The API's access log: one line per request, which gunicorn writes to this file of LOG_DIR itself
# (reopened on SIGUSR1), so that its lines do not cross supervisord's pipe.
ACCESS_LOG = "access.log"

# The id of the request the current thread serves (web/request_id.py sets it); None outside requests.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def encode(line: dict) -> str:
    """One JSON line laid out as `json.dumps(line, default=str)` lays it out (people grep for
    '"msg": "stopped"'), several times faster: orjson writes each key and value, joined with json's
    separators. Unlike json.dumps, non-ASCII text stays UTF-8 and nested values are compact."""
    try:
        parts = [b"%s: %s" % (orjson.dumps(key), orjson.dumps(value, default=str)) for key, value in line.items()]
    except (TypeError, orjson.JSONEncodeError):  # e.g. an int beyond 64 bits: the slow, general way
        return json.dumps(line, default=str)
    return (b"{" + b", ".join(parts) + b"}").decode()


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str):
        super().__init__()
        self.component = component
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float) -> str:
        # strftime once per second, not once per line.
        second = int(created)
        if self._second[0] != second:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{self._second[1]}.{int((created - second) * 1000):03d}Z"

    def _head(self, created: float, level: str, logger: str, msg: str) -> dict:
        return {"ts": self._timestamp(created), "level": level, "component": self.component, "logger": logger,
                "msg": msg}

    def info_line(self, logger: str, msg: str, fields: dict) -> str:
        """The line format() makes of an INFO record with these `extra` fields, without the record."""
        line = self._head(time.time(), "info", logger, msg)
        line.update(fields)
        return encode(line)

    def format(self, record: logging.LogRecord) -> str:
        line = self._head(record.created, record.levelname.lower(), record.name, record.getMessage())
        current = request_id.get()
        if current is not None:
            line["request_id"] = current
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return encode(line)


def access_log_path(log_dir: str) -> str:
    """LOG_DIR/access.log, absolute (a relative LOG_DIR is the clone's, where every program runs)."""
    return os.path.join(os.path.abspath(log_dir), ACCESS_LOG)


def logging_config(component: str, level: str = "INFO", *, extra_handlers: dict | None = None,
                   extra_loggers: dict | None = None) -> dict:
    """The dictConfig of every program: JSON lines on stdout (and in any `extra_handlers`, with the same
    formatter `json`). gunicorn takes it as logconfig_dict."""
    # kafka-python logs every failed reconnect at ERROR, many a second while a broker is down; our
    # own loops log one line per retry instead. LOG_LEVEL=DEBUG shows kafka-python's view too.
    kafka_level = "DEBUG" if level == "DEBUG" else "CRITICAL"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "citycache.runtime.logs.JsonFormatter", "component": component}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
                     **(extra_handlers or {})},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {"kafka": {"level": kafka_level}, **(extra_loggers or {})},
    }


def configure_logging(component: str, level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(component, level))
