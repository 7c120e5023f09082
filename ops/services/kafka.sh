# shellcheck shell=bash
# Kafka: one KRaft node that is broker and controller at once; the storage is formatted once and the
# cluster id kept in $STATE_DIR/kafka/cluster.id. Sourced by ops/services.sh.
KAFKA_DIR=$STATE_DIR/kafka
KAFKA_LIBS=$CACHE_HOME/kafka-$KAFKA_VERSION/libs
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))

kafka_pid() { pid_from_file "$KAFKA_DIR/kafka.pid" kafka; }

KAFKA_JAVA_OPTS=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*")

kafka_java() { java "${KAFKA_JAVA_OPTS[@]}" "$@"; }

kafka_config() {
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
  cat >"$KAFKA_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
auto.create.topics.enable=true
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After a kill the restarted broker cannot register until its old session expires (9 s by default).
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
PROPS
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

# The controller's address is written into the storage at format time, so a formatted storage only
# serves the ports it was formatted for.
kafka_format() {
  local ports="$KAFKA_PORT $KAFKA_CONTROLLER_PORT"
  if [[ -f $KAFKA_DIR/data/meta.properties ]]; then
    [[ $(cat "$KAFKA_DIR/formatted-ports" 2>/dev/null) == "$ports" ]] ||
      die "kafka: $KAFKA_DIR/data was formatted for ports $(cat "$KAFKA_DIR/formatted-ports" 2>/dev/null), not $ports; stop kafka and remove $KAFKA_DIR to start afresh"
    return
  fi
  if ! grep -Eqx '[A-Za-z0-9_-]{22}' "$KAFKA_DIR/cluster.id" 2>/dev/null; then
    # The tool logs to stdout too: the id is its last line.
    kafka_java kafka.tools.StorageTool random-uuid | tail -n 1 >"$KAFKA_DIR/cluster.id"
  fi
  kafka_java kafka.tools.StorageTool format --standalone --ignore-formatted -t "$(cat "$KAFKA_DIR/cluster.id")" \
    -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1 || { cat "$KAFKA_DIR/format.log" >&2; die "kafka: storage format failed"; }
  echo "$ports" >"$KAFKA_DIR/formatted-ports"
  say "kafka: formatted $KAFKA_DIR/data (cluster $(cat "$KAFKA_DIR/cluster.id"))"
}

kafka_start() {
  [[ -f $KAFKA_LIBS/../.installed ]] || die "kafka: $KAFKA_VERSION is not installed: run ops/install.sh"
  require_free_port kafka "$KAFKA_PORT"
  require_free_port kafka "$KAFKA_CONTROLLER_PORT"
  mkdir -p "$KAFKA_DIR/data"
  kafka_config
  kafka_format
  launch_java "$KAFKA_DIR" "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/kafka.log" \
    "${KAFKA_JAVA_OPTS[@]}" kafka.Kafka "$KAFKA_DIR/server.properties"
  kafka_wait "$(cat "$KAFKA_DIR/kafka.pid")"
}

kafka_ready() {
  timeout 20 "$PYTHON" -c '
import os
from kafka import KafkaAdminClient
KafkaAdminClient(bootstrap_servers="127.0.0.1:" + os.environ["KAFKA_PORT"], request_timeout_ms=5000).list_topics()'
}

kafka_wait() { wait_until kafka "$1" 60 "$KAFKA_DIR/kafka.log" kafka_ready; }

kafka_stop() { terminate kafka "$1"; }
