#!/usr/bin/env bash
# This clone's whole local stack as one thing, for bin/run and bin/stop:
#   ops/stack.sh find     what of this clone is running, one line each (exit 1 when nothing)
#   ops/stack.sh stop     stop it in order: the app programs, then the services
#   ops/stack.sh runner   the pid of a live bin/run of this clone (exit 1 when none)
# Only this clone's processes are ever touched: the supervisord of its .run/supervisord.pid, the
# programs a supervisord started here (SUPERVISOR_ENABLED in their environment, cwd this clone),
# even after that supervisord died, and the services behind ops/services.sh's pid files.
set -euo pipefail
# shellcheck source=ops/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
export PATH="$VENV/bin:$PATH"

say() { echo "stack: $*"; }

# PID is alive, works in this clone and its command line contains WORD.
ours() {
  local pid=$1 word=$2
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$ROOT" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$word"
}

runner_pid() {
  local pid
  pid=$(head -n 1 .run/run.pid 2>/dev/null) && ours "$pid" bin/run && echo "$pid"
}

supervisord_pid() {
  local pid
  pid=$(head -n 1 .run/supervisord.pid 2>/dev/null) && ours "$pid" supervisord && echo "$pid"
}

# Programs started by a supervisord in this clone: their cwd is the clone (directory=%(here)s) and
# supervisord marks their environment. Found this way they outlive a supervisord killed with -9.
program_pids() {
  local dir pid
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [[ $(readlink "$dir/cwd" 2>/dev/null) == "$ROOT" ]] || continue
    tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qx 'SUPERVISOR_ENABLED=1' || continue
    echo "$pid"
  done
}

describe() { echo "$1 $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | cut -c1-60)"; }

running_services() { ops/services.sh status 2>/dev/null | sed -n 's/^services: \([a-z0-9]*\): running.*/\1/p'; }

find_all() {
  local pid found=1
  if pid=$(supervisord_pid); then echo "supervisord pid $pid"; found=0; fi
  for pid in $(program_pids); do echo "program $(describe "$pid")"; found=0; done
  while read -r line; do echo "$line"; found=0; done < <(ops/services.sh status 2>/dev/null | sed -n 's/^services: \(.*: running.*\)/\1/p')
  return "$found"
}

# Waits up to SECONDS for every PID to end; prints those still alive.
await_exit() {
  local seconds=$1 pid left
  shift
  local deadline=$((SECONDS + seconds))
  while :; do
    left=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
    ((${#left[@]} && SECONDS < deadline)) || break
    sleep 0.2
  done
  echo "${left[@]}"
}

stop_programs() {
  local pid orphans left
  if pid=$(supervisord_pid); then
    say "stopping supervisord (pid $pid) and its programs"
    supervisorctl -c supervisord.conf shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    # Its programs' own stopwaitsecs are at most 30 s; then supervisord kills them itself.
    left=$(await_exit 45 "$pid")
    [[ -z $left ]] || { say "supervisord (pid $pid) still running after 45 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  mapfile -t orphans < <(program_pids)
  ((${#orphans[@]})) || return 0
  say "stopping programs whose supervisord is gone: $(for p in "${orphans[@]}"; do describe "$p"; done | paste -sd ';')"
  kill -TERM "${orphans[@]}" 2>/dev/null || true
  # gunicorn's graceful_timeout is 20 s.
  left=$(await_exit 25 "${orphans[@]}")
  if [[ -n $left ]]; then
    say "still running after 25 s, SIGKILL: $left"
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
  fi
}

stop_all() {
  stop_programs
  local services
  mapfile -t services < <(running_services)
  ((${#services[@]} == 0)) || ops/services.sh stop "${services[@]}"
}

case ${1:-} in
  find) find_all ;;
  stop) stop_all ;;
  runner) runner_pid ;;
  *) echo "usage: ops/stack.sh find|stop|runner" >&2; exit 2 ;;
esac
