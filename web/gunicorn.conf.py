"""gunicorn settings (gthread workers); every value comes from the project settings."""
from pathlib import Path

from citycache.read.resources import RESOURCES
from citycache.runtime import metrics
from citycache.runtime.logs import logging_config
from citycache.runtime.startup import checked_rules, refusing_bad_config
from citycache.settings import get_settings

# A bad setting or rule stops the master here, before any worker starts, with one line (exit 78).
_settings = refusing_bad_config(get_settings)()
# Before any worker imports prometheus_client: every process of the API writes to this directory.
_sample_dir = refusing_bad_config(metrics.setup)(_settings)
_rules = refusing_bad_config(checked_rules)(_settings)
for _resource in RESOURCES:  # the keys the API caches must be some rule's, else nothing deletes them
    refusing_bad_config(_resource.check)(_rules)

bind = f"0.0.0.0:{_settings.http_port}"
worker_class = "gthread"
workers = _settings.web_workers
threads = _settings.web_threads
timeout = 30
graceful_timeout = 20  # supervisord's stopwaitsecs for web is longer than this
keepalive = 5
# gunicornc's socket beside supervisord's, in the clone's (or image's) .run/, not in $HOME.
control_socket = str(Path(__file__).resolve().parent.parent / ".run" / "gunicorn.ctl")
accesslog = "-"
errorlog = "-"
# One JSON access line per request with fields, not a printf template (web/access_log.py).
logger_class = "web.access_log.JsonAccessLogger"
# The web program's logging, configured here once (the app factory leaves logging to its server).
logconfig_dict = logging_config("web", _settings.log_level, extra_loggers={
    "gunicorn.error": {"level": _settings.log_level, "handlers": ["stdout"], "propagate": False},
    "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
})


def on_starting(server) -> None:
    """Samples of processes gone since the last run would be summed forever: drop them (the
    workers' live files stay)."""
    metrics.remove_dead_files(_sample_dir)


def post_worker_init(worker) -> None:
    """Each worker snapshots the invalidation figures the page draws (web/trends.py)."""
    from web import trends

    trends.start()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
