"""`bin/cli logs [NAME] [-f] [-n N]`: a program's log file, or the API's access log, from LOG_DIR.

supervisord writes each program's stdout and stderr to LOG_DIR/<program>.log (`supervisorctl tail`
reads those); gunicorn writes one line per request to LOG_DIR/access.log itself, which supervisorctl
cannot show. This shows either, with tail: `-f` follows it across a rotation (tail -F).
"""
from __future__ import annotations

import os

from citycache.runtime.logs import access_log_path

PROGRAMS = ("web", "pg_listener", "kafka_cleaner")
NAMES = ("access", *PROGRAMS)


def log_file(log_dir: str, name: str) -> str:
    return access_log_path(log_dir) if name == "access" else os.path.join(os.path.abspath(log_dir), f"{name}.log")


def tail_argv(path: str, lines: int, follow: bool) -> list[str]:
    return ["tail", "-n", str(lines), *(["-F"] if follow else []), path]


def cmd_logs(settings, args) -> int:
    path = log_file(settings.log_dir, args.name)
    if not os.path.exists(path):
        print(f"logs: {path} does not exist (yet): is LOG_DIR ({settings.log_dir}) the one the programs use?")
        return 1
    os.execvp("tail", tail_argv(path, args.lines, args.follow))


def add_parser(commands) -> None:
    logs = commands.add_parser(
        "logs", help="a program's log, or the API's access log (access: one JSON line per request)",
        description="Show the end of LOG_DIR/<name>.log: access (every request, written by gunicorn), web "
                    "(the API's errors and events), pg_listener or kafka_cleaner. -f follows it, across rotations.")
    logs.add_argument("name", nargs="?", default="access", choices=NAMES, help="which log (default: access)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep showing new lines (tail -F)")
    logs.add_argument("-n", "--lines", type=int, default=20, help="lines to show first (default 20)")
    logs.set_defaults(run=cmd_logs)
