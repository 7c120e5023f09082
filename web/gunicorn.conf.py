"""gunicorn settings (gthread workers); every value comes from the project settings."""
from pathlib import Path

from citycache.read.resources import RESOURCES
from citycache.runtime import metrics
from citycache.runtime.logs import access_log_path, logging_config
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
errorlog = "-"
# The access log is a file gunicorn's workers write themselves (LOG_DIR/access.log), one JSON line per
# request with fields (web/access_log.py): through supervisord's pipe, which copies each line, a hit
# cost half as much again (README, Benchmarks). SIGUSR1 reopens it, so logrotate can move it away.
# The errors and the app's own lines stay on stdout, in LOG_DIR/web.log.
# LOG_DIR is made by the launchers (ops/app.sh, bin/run, the VM install, the image).
_access_log = access_log_path(_settings.log_dir)
accesslog = None  # not gunicorn's own handler: the one below, with our formatter
logger_class = "web.access_log.JsonAccessLogger"
# The web program's logging, configured here once (the app factory leaves logging to its server).
logconfig_dict = logging_config(
    "web", _settings.log_level,
    extra_handlers={"access": {"class": "logging.FileHandler", "filename": _access_log, "formatter": "json"}},
    extra_loggers={
        "gunicorn.error": {"level": _settings.log_level, "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
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
