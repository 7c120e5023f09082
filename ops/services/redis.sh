# shellcheck shell=bash
# Redis: a cache only, so nothing is persisted (no RDB snapshots, no AOF). Sourced by ops/services.sh.
# With REDIS_CLUSTER=true: a Redis Cluster of 3 primaries and 3 replicas on REDIS_PORT..REDIS_PORT+5,
# one directory per node ($STATE_DIR/redis/<port>/, where the node keeps its nodes.conf, so a node
# restarted after a kill rejoins the cluster under its old identity), created once with
# `redis-cli --cluster create`. Each node's cluster bus listens 50 above its port (not Redis's
# default +10000), so a cluster stays inside a small port range.
REDIS_DIR=$STATE_DIR/redis
REDIS_CLUSTER_NODES=6
# A primary silent this long is failed over to its replica. Short, so a test's failover takes
# seconds; long enough that a busy 2-core machine does not fail over a healthy node.
REDIS_NODE_TIMEOUT_MS=${REDIS_NODE_TIMEOUT_MS:-2000}

redis_ports() {
  if [[ $REDIS_CLUSTER == true ]]; then seq "$REDIS_PORT" $((REDIS_PORT + REDIS_CLUSTER_NODES - 1)); else echo "$REDIS_PORT"; fi
}

redis_node_dir() { if [[ $REDIS_CLUSTER == true ]]; then echo "$REDIS_DIR/$1"; else echo "$REDIS_DIR"; fi; }

# The pid of one node, when it is ours and alive.
redis_node_pid() { pid_from_file "$(redis_node_dir "$1")/redis.pid" redis; }

# Every node's pid, space-separated; fails unless all of them run.
redis_pid() { all_node_pids redis_node_pid $(redis_ports); }

# Whether any node runs (a cluster with a killed node is still stopped node by node).
redis_any() { any_node_runs redis_node_pid $(redis_ports); }

redis_start_node() {
  local port=$1 dir
  dir=$(redis_node_dir "$port")
  redis_node_pid "$port" >/dev/null && return 0
  require_free_port redis "$port"
  [[ $REDIS_CLUSTER == true ]] && require_free_port redis $((port + 50))
  mkdir -p "$dir"
  rm -f "$dir/redis.pid"
  local cluster=()
  [[ $REDIS_CLUSTER == true ]] && cluster=(--cluster-enabled yes --cluster-config-file nodes.conf
    --cluster-node-timeout "$REDIS_NODE_TIMEOUT_MS" --cluster-port $((port + 50)))
  # "-::1": also on IPv6 loopback when the machine has it, since "localhost" may resolve there.
  redis-server --port "$port" --bind 127.0.0.1 -::1 --save "" --appendonly no "${cluster[@]}" \
    --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
}

redis_start() {
  local port i
  for port in $(redis_ports); do redis_start_node "$port"; done
  for port in $(redis_ports); do
    for ((i = 0; i < 50; i++)); do [[ -s $(redis_node_dir "$port")/redis.pid ]] && break; sleep 0.1; done
    redis_wait_node "$port"
  done
  [[ $REDIS_CLUSTER == true ]] && redis_cluster_create
  return 0
}

redis_cli() { redis-cli -h 127.0.0.1 -p "$@"; }

redis_ping() { [[ $(redis_cli "$1" ping 2>/dev/null) == PONG ]]; }

redis_wait_node() {
  wait_until redis "$(head -n 1 "$(redis_node_dir "$1")/redis.pid" 2>/dev/null)" 30 "$(redis_node_dir "$1")/redis.log" redis_ping "$1"
}

redis_cluster_ok() {
  local port
  for port in $(redis_ports); do
    redis_cli "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
}

# Slots are assigned once; later starts find them in each node's nodes.conf.
redis_cluster_create() {
  if [[ $(redis_cli "$REDIS_PORT" cluster info | grep -o 'cluster_slots_assigned:[0-9]*') != cluster_slots_assigned:16384 ]]; then
    local addrs=()
    for port in $(redis_ports); do addrs+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$REDIS_DIR/create.log" 2>&1 ||
      { cat "$REDIS_DIR/create.log" >&2; die "redis: cluster create failed"; }
    say "redis: cluster created on ${addrs[*]}"
  fi
  wait_until redis "" 30 "$REDIS_DIR/create.log" redis_cluster_ok
}

redis_wait() {
  local port
  for port in $(redis_ports); do redis_wait_node "$port"; done
  [[ $REDIS_CLUSTER == true ]] && wait_until redis "" 30 /dev/null redis_cluster_ok
  return 0
}

redis_stop() {
  local port pid i
  for port in $(redis_ports); do
    pid=$(redis_node_pid "$port") || continue
    redis_cli "$port" shutdown nosave >/dev/null 2>&1 || true
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && terminate redis "$pid"
  done
  return 0
}
