#!/usr/bin/env bash
# The app programs under supervisord, detached (for the test command and scripts):
#   ops/app.sh start|stop|status|running   (running: exit 0 when this clone's supervisord answers)
# `start` returns when gunicorn, pg_listener, kafka_cleaner and consistency_sampler are RUNNING and the API answers.
# For day-to-day operation use supervisorctl from the clone: `supervisorctl status`.
set -euo pipefail
# shellcheck source=ops/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
mkdir -p "$ROOT/.run"

# supervisord.conf expands LOG_DIR, LOG_FILE_MAX_BYTES and LOG_FILE_BACKUPS: the settings' values
# (environment, else .env, else the defaults: one file per program in .run/log/, rotated at 50MB).
eval "$("$PYTHON" -m citycache.settings --supervisord)"
mkdir -p "$LOG_DIR"

ctl() { supervisorctl -c supervisord.conf "$@"; }
running() { [[ $(ctl pid 2>/dev/null) =~ ^[0-9]+$ ]]; }
http_port() { "$PYTHON" -c 'from citycache.settings import get_settings; print(get_settings().http_port)'; }

start() {
  if running; then echo "app: supervisord already running"; return 0; fi
  setsid nohup supervisord -c supervisord.conf >>"$ROOT/.run/app.log" 2>&1 </dev/null &
  local deadline=$((SECONDS + 60)) url="http://127.0.0.1:$(http_port)/health"
  until running && ctl status >/dev/null 2>&1 && curl -s -o /dev/null "$url"; do
    if ((SECONDS > deadline)); then
      echo "app: programs did not come up; the end of .run/app.log and the programs' logs:" >&2
      tail -n 40 "$ROOT/.run/app.log" "$LOG_DIR"/*.log >&2
      return 1
    fi
    sleep 0.5
  done
  echo "app: web, pg_listener, kafka_cleaner and consistency_sampler RUNNING (logs: $LOG_DIR/<program>.log, requests: $LOG_DIR/access.log, supervisord's own: .run/app.log)"
}

stop() {
  running || { echo "app: not running"; return 0; }
  local pid
  pid=$(ctl pid)
  ctl shutdown >/dev/null
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  echo "app: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) ctl status ;;
  running) running ;;
  *) echo "usage: ops/app.sh start|stop|status|running" >&2; exit 2 ;;
esac
