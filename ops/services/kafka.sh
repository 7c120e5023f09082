# shellcheck shell=bash
# Kafka in KRaft mode, every node broker and controller at once. One node by default; with
# KAFKA_BROKERS=3, three separate processes (node.id 1..3), each with its own ports (broker
# KAFKA_PORT + 2*(id-1), its controller one above), log dir ($STATE_DIR/kafka/node-<id>/) and
# pid, joined by controller.quorum.bootstrap.servers into one quorum. Internal topics are then
# replicated 3 times with min.insync.replicas 2. The storage is formatted once; the cluster id is
# kept in $STATE_DIR/kafka/cluster.id. Sourced by ops/services.sh.
KAFKA_DIR=$STATE_DIR/kafka
KAFKA_LIBS=$CACHE_HOME/kafka-$KAFKA_VERSION/libs

KAFKA_JAVA_OPTS=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*")
# Three brokers share two cores with everything else: smaller heaps each.
((KAFKA_BROKERS > 1)) && KAFKA_JAVA_OPTS[0]=-Xms128m && KAFKA_JAVA_OPTS[1]=-Xmx384m

kafka_java() { java "${KAFKA_JAVA_OPTS[@]}" "$@"; }

kafka_nodes() { seq 1 "$KAFKA_BROKERS"; }
kafka_port_of() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
kafka_controller_port_of() { echo $((KAFKA_PORT + 2 * ($1 - 1) + 1)); }
# The single node keeps the layout it always had.
kafka_node_dir() { if ((KAFKA_BROKERS == 1)); then echo "$KAFKA_DIR"; else echo "$KAFKA_DIR/node-$1"; fi; }

kafka_node_pid() { pid_from_file "$(kafka_node_dir "$1")/kafka.pid" kafka; }

# Every node's pid, space-separated; fails unless all of them run.
kafka_pid() { all_node_pids kafka_node_pid $(kafka_nodes); }

kafka_any() { any_node_runs kafka_node_pid $(kafka_nodes); }

kafka_quorum() {
  local node out=()
  for node in $(kafka_nodes); do out+=("127.0.0.1:$(kafka_controller_port_of "$node")"); done
  (IFS=,; echo "${out[*]}")
}

kafka_config() {
  local node=$1 dir port cport replicas min_isr
  dir=$(kafka_node_dir "$node")
  port=$(kafka_port_of "$node")
  cport=$(kafka_controller_port_of "$node")
  replicas=$((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3))
  min_isr=$((replicas > 1 ? replicas - 1 : 1))
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$node
controller.quorum.bootstrap.servers=$(kafka_quorum)
listeners=$listeners
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=true
num.partitions=3
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
# Lets KAFKA_SESSION_TIMEOUT_MS go below the 6 s default floor (a dead cleaner's partitions move sooner).
group.min.session.timeout.ms=1000
# After a kill the restarted broker cannot register until its old session expires (9 s by default).
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
# A controller that stops answering loses the leadership in about 2 s, not 4 s (the default).
controller.quorum.fetch.timeout.ms=2000
controller.quorum.election.timeout.ms=1000
PROPS
}

kafka_log4j() {
  cat >"$KAFKA_DIR/log4j2.properties" <<'PROPS'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka-request.name = kafka.request.logger
logger.kafka-request.level = warn
logger.state-change.name = state.change.logger
logger.state-change.level = warn
PROPS
}

# A Kafka Uuid (22 base64url characters, not starting with '-'), without starting a JVM for it.
kafka_uuid() {
  "$PYTHON" -c "
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip('=')
    if not u.startswith('-'): print(u); break"
}

# The controllers' addresses are written into the storage at format time, so a formatted storage
# only serves the ports (and the node count) it was formatted for.
kafka_format() {
  local node=$1 dir ports
  dir=$(kafka_node_dir "$node")
  ports="$KAFKA_BROKERS $(kafka_port_of "$node") $(kafka_controller_port_of "$node")"
  ((KAFKA_BROKERS == 1)) && ports="$(kafka_port_of 1) $(kafka_controller_port_of 1)"
  if [[ -f $dir/data/meta.properties ]]; then
    [[ $(cat "$dir/formatted-ports" 2>/dev/null) == "$ports" ]] ||
      die "kafka: $dir/data was formatted for ports $(cat "$dir/formatted-ports" 2>/dev/null), not $ports; stop kafka and remove $KAFKA_DIR to start afresh"
    return
  fi
  local quorum=(--standalone)
  ((KAFKA_BROKERS > 1)) && quorum=(--initial-controllers "$(cat "$KAFKA_DIR/initial-controllers")")
  kafka_java kafka.tools.StorageTool format "${quorum[@]}" --ignore-formatted -t "$(cat "$KAFKA_DIR/cluster.id")" \
    -c "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "kafka: storage format of node $node failed"; }
  echo "$ports" >"$dir/formatted-ports"
}

# The cluster id and (for several nodes) each controller's directory id, chosen once.
kafka_ids() {
  grep -Eqx '[A-Za-z0-9_-]{22}' "$KAFKA_DIR/cluster.id" 2>/dev/null || kafka_uuid >"$KAFKA_DIR/cluster.id"
  if ((KAFKA_BROKERS > 1)) && [[ ! -s $KAFKA_DIR/initial-controllers ]]; then
    local node voters=()
    for node in $(kafka_nodes); do voters+=("$node@127.0.0.1:$(kafka_controller_port_of "$node"):$(kafka_uuid)"); done
    (IFS=,; echo "${voters[*]}") >"$KAFKA_DIR/initial-controllers"
  fi
}

kafka_start_node() {
  local node=$1 dir
  dir=$(kafka_node_dir "$node")
  kafka_node_pid "$node" >/dev/null && return 0
  require_free_port kafka "$(kafka_port_of "$node")"
  require_free_port kafka "$(kafka_controller_port_of "$node")"
  mkdir -p "$dir/data"
  kafka_config "$node"
  kafka_format "$node"
  launch_java "$dir" "$dir/kafka.pid" "$dir/kafka.log" "${KAFKA_JAVA_OPTS[@]}" kafka.Kafka "$dir/server.properties"
}

# The nodes are formatted and started in parallel (a JVM start each); the quorum needs a majority.
kafka_start() {
  [[ -f $KAFKA_LIBS/../.installed ]] || die "kafka: $KAFKA_VERSION is not installed: run ops/install.sh run"
  mkdir -p "$KAFKA_DIR"
  kafka_log4j
  kafka_ids
  local node jobs=()
  for node in $(kafka_nodes); do
    kafka_start_node "$node" &
    jobs+=($!)
  done
  for node in "${jobs[@]}"; do wait "$node" || die "kafka: a node failed to start"; done
  kafka_wait
  ((KAFKA_BROKERS == 1)) || say "kafka: $KAFKA_BROKERS brokers, quorum $(kafka_quorum)"
}

# Ready: every node answers a client call and sees all the brokers registered.
kafka_ready() {
  # The port and the count reach Python through the environment, not as code.
  KAFKA_READY_PORT=$1 timeout 20 "$PYTHON" -c '
import os
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers="127.0.0.1:" + os.environ["KAFKA_READY_PORT"], request_timeout_ms=5000)
admin.list_topics()
assert len(admin.describe_cluster()["brokers"]) >= int(os.environ["KAFKA_BROKERS"])'
}

kafka_wait() {
  local node dir
  for node in $(kafka_nodes); do
    dir=$(kafka_node_dir "$node")
    wait_until kafka "$(cat "$dir/kafka.pid")" 90 "$dir/kafka.log" kafka_ready "$(kafka_port_of "$node")"
  done
}

kafka_stop() {
  local node pid
  for node in $(kafka_nodes); do
    pid=$(kafka_node_pid "$node") && terminate kafka "$pid" &
  done
  wait
}
