#!/usr/bin/env bash
# Runs the project's backing services as local processes (no Docker):
#   ops/services.sh start|stop|status|restart|wait|kill [postgres|redis|kafka|s3 ...]
# No names = all four. Ports and credentials come from the project settings (env and .env); data,
# logs and pids live in $STATE_DIR/<service>/. `start` returns once each service answers a real
# client call; `kill` is a SIGKILL for fault tests.
set -euo pipefail
# shellcheck source=ops/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

ALL_SERVICES=(postgres redis kafka s3)

say() { echo "services: $*"; }
die() { echo "services: $*" >&2; exit 1; }

[[ -f $VENV/.installed ]] || die "no venv at $VENV: run ops/install.sh run first"
# Run from the clone so that its .env is honoured.
exports=$(cd "$ROOT" && "$PYTHON" -m citycache.settings) || die "could not read the project settings"
eval "$exports"

mkdir -p "$STATE_DIR"
STATE_REAL=$(cd "$STATE_DIR" && pwd -P)

# --- helpers shared by the per-service files ---------------------------------------------------

# A pid counts as ours only while the process works inside our state dir (each service runs with
# its cwd there), so a stale pid file whose pid was reused by another program is not mistaken.
is_our_pid() {
  local pid=$1 svc=$2 dir=${3:-$STATE_REAL/$2} cwd
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
  [[ $cwd == "$dir" || $cwd == "$dir/"* ]]
}

# Prints the pid recorded in FILE (first line) when that process is ours and alive.
pid_from_file() {
  local file=$1 svc=$2 dir=${3:-} pid
  [[ -f $file ]] || return 1
  pid=$(head -n 1 "$file")
  is_our_pid "$pid" "$svc" ${dir:+"$dir"} && echo "$pid"
}

# all_node_pids NODE_PID_FN NODE...: every node's pid, space-separated; fails unless all of them run.
all_node_pids() {
  local fn=$1 node pid pids=()
  shift
  for node in "$@"; do
    pid=$("$fn" "$node") || return 1
    pids+=("$pid")
  done
  echo "${pids[*]}"
}

# any_node_runs NODE_PID_FN NODE...: whether any of the nodes runs.
any_node_runs() {
  local fn=$1 node
  shift
  for node in "$@"; do "$fn" "$node" >/dev/null && return 0; done
  return 1
}

port_owner() {
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n 1 |
    sed 's/users:(("//; s/",pid=/ pid /'
}

require_free_port() {
  local svc=$1 port=$2
  if ss -Hltn "sport = :$port" | grep -q .; then
    die "$svc: port $port is already taken by another process ($(port_owner "$port"))"
  fi
}

# wait_until SVC PID TIMEOUT LOG CMD...: retries CMD every second until it succeeds; fails early
# when PID has died, and shows the end of LOG when it gives up.
wait_until() {
  local svc=$1 pid=$2 timeout=$3 log=$4
  shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [[ -n ${SERVICES_TRACE:-} ]] && echo "  $(date +%T.%N | cut -c1-12) $svc not ready" >&2
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$log" >&2 || true
      die "$svc: the process exited during startup (log: $log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$log" >&2 || true
      die "$svc: not ready after ${timeout}s (log: $log)"
    fi
    sleep 1
  done
}

# SIGTERM, then up to 20 s for a graceful exit, then SIGKILL.
terminate() {
  local svc=$1 pid=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  say "$svc: still running after 20s, sending SIGKILL"
  kill_group "$pid"
}

# Our processes lead their own session (setsid), so the whole group goes, helpers included.
kill_group() {
  local pid=$1
  if [[ $(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') == "$pid" ]]; then
    kill -KILL -- "-$pid" 2>/dev/null || true
  else
    kill -KILL "$pid" 2>/dev/null || true
  fi
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

# Starts a Java main class in the background, detached from this shell, with its cwd in DIR.
launch_java() {
  local dir=$1 pidfile=$2 log=$3
  shift 3
  (cd "$dir" && exec setsid java "$@" </dev/null >>"$log" 2>&1) &
  echo $! >"$pidfile"
}

# --- per-service functions: <svc>_pid, <svc>_start, <svc>_stop, <svc>_ready --------------------

for svc in "${ALL_SERVICES[@]}"; do
  # shellcheck source=/dev/null
  source "$(dirname "${BASH_SOURCE[0]}")/services/$svc.sh"
done

svc_start() {
  local svc=$1 pid
  if pid=$("${svc}_pid"); then
    say "$svc: already running (pid $pid)"
    return
  fi
  mkdir -p "$STATE_DIR/$svc"
  "${svc}_start"
  say "$svc: ready (pid $("${svc}_pid"))"
}

svc_stop() {
  local svc=$1 pid
  if ! pid=$("${svc}_pid"); then
    # A service of several nodes (a Redis or Kafka cluster) with one node down: stop the rest.
    if declare -F "${svc}_any" >/dev/null && "${svc}_any"; then "${svc}_stop" ""; fi
    say "$svc: stopped"
    return
  fi
  "${svc}_stop" "$pid"
  say "$svc: stopped (was pid $pid)"
}

svc_kill() {
  local svc=$1 pid one
  if pid=$("${svc}_pid"); then
    for one in $pid; do kill_group "$one"; done
    say "$svc: killed (pid $pid)"
  else
    say "$svc: not running"
  fi
}

svc_wait() {
  local svc=$1 pid
  pid=$("${svc}_pid") || die "$svc: not running"
  "${svc}_wait" "$pid"
  say "$svc: ready (pid $pid)"
}

svc_status() {
  local svc=$1 pid
  if pid=$("${svc}_pid"); then
    say "$svc: running (pid $pid)"
  else
    say "$svc: stopped"
    return 1
  fi
}

usage() { die "usage: ops/services.sh start|stop|status|restart|wait|kill [${ALL_SERVICES[*]}]"; }

(($# >= 1)) || usage
action=$1
shift
names=("$@")
((${#names[@]})) || names=("${ALL_SERVICES[@]}")
for svc in "${names[@]}"; do
  [[ " ${ALL_SERVICES[*]} " == *" $svc "* ]] || die "unknown service '$svc' (one of: ${ALL_SERVICES[*]})"
done

case $action in
  start | wait | kill) for svc in "${names[@]}"; do "svc_$action" "$svc"; done ;;
  stop) for ((i = ${#names[@]} - 1; i >= 0; i--)); do svc_stop "${names[i]}"; done ;;
  restart)
    for ((i = ${#names[@]} - 1; i >= 0; i--)); do svc_stop "${names[i]}"; done
    for svc in "${names[@]}"; do svc_start "$svc"; done
    ;;
  status)
    rc=0
    for svc in "${names[@]}"; do svc_status "$svc" || rc=1; done
    exit "$rc"
    ;;
  *) usage ;;
esac
