"""One JSON line per event on stdout, with the component name on every line (and the request id
on every line logged while a request is being served)."""
from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import time

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# The id of the request the current thread serves (web/request_id.py sets it); None outside requests.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str):
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            line["request_id"] = current
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def logging_config(component: str, level: str = "INFO", *, extra_loggers: dict | None = None) -> dict:
    """The dictConfig of every program: JSON lines on stdout. gunicorn takes it as logconfig_dict."""
    # kafka-python logs every failed reconnect at ERROR, many a second while a broker is down; our
    # own loops log one line per retry instead. LOG_LEVEL=DEBUG shows kafka-python's view too.
    kafka_level = "DEBUG" if level == "DEBUG" else "CRITICAL"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "citycache.logs.JsonFormatter", "component": component}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {"kafka": {"level": kafka_level}, **(extra_loggers or {})},
    }


def configure_logging(component: str, level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(component, level))
