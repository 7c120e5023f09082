# shellcheck shell=bash
# Redis: a cache only, so nothing is persisted (no RDB snapshots, no AOF). Sourced by ops/services.sh.
REDIS_DIR=$STATE_DIR/redis

redis_pid() { pid_from_file "$REDIS_DIR/redis.pid" redis; }

redis_start() {
  require_free_port redis "$REDIS_PORT"
  mkdir -p "$REDIS_DIR"
  rm -f "$REDIS_DIR/redis.pid"
  # "-::1": also on IPv6 loopback when the machine has it, since "localhost" may resolve there.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 -::1 --save "" --appendonly no \
    --dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
  local i
  for ((i = 0; i < 50; i++)); do [[ -s $REDIS_DIR/redis.pid ]] && break; sleep 0.1; done
  redis_wait "$(head -n 1 "$REDIS_DIR/redis.pid" 2>/dev/null)"
}

redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

redis_wait() { wait_until redis "$1" 30 "$REDIS_DIR/redis.log" redis_ping; }

redis_stop() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  local i
  for ((i = 0; i < 40; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.5; done
  terminate redis "$1"
}
