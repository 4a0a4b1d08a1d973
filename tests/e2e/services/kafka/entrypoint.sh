#!/bin/bash
# Start one KRaft Kafka node (broker + controller): write its configuration, format the storage
# on first start, then exec the broker so it gets the signals.
#
# Settings (environment):
#   KAFKA_ADVERTISED_LISTENERS  what clients are told to connect to; the manifest sets the
#                               Service's DNS name (PLAINTEXT://kafka.<namespace>.svc:9092).
#                               Default: this container's IP, for a plain `docker run`.
#   KAFKA_NUM_PARTITIONS        partitions of topics created without a count (default 3)
#   KAFKA_HEAP_OPTS             JVM heap (default -Xms128m -Xmx384m: the kind node has little)
#   KAFKA_CLUSTER_ID            cluster id used at format time (default: a random one)
#   KAFKA_DATA_DIR              log directory (default /var/lib/kafka/data)
set -euo pipefail

data_dir=${KAFKA_DATA_DIR:-/var/lib/kafka/data}
conf_dir=${KAFKA_CONF_DIR:-/tmp/kafka-config}
port=9092
controller_port=9093
advertised=${KAFKA_ADVERTISED_LISTENERS:-PLAINTEXT://$(hostname -i | awk '{print $1}'):${port}}
classpath='/opt/kafka/libs/*'

mkdir -p "$conf_dir" "$data_dir"
# The same broker settings as the local stack (src/restlake/stack/kafka.py), except that
# topics are never created by accident: production runs with auto-creation off, and the
# operator creates every topic it needs.
cat >"$conf_dir/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${controller_port}
listeners=PLAINTEXT://0.0.0.0:${port},CONTROLLER://127.0.0.1:${controller_port}
advertised.listeners=${advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${data_dir}
auto.create.topics.enable=false
num.partitions=${KAFKA_NUM_PARTITIONS:-3}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
PROPERTIES

# Logs go to stdout, where `kubectl logs` finds them; per-request state-change chatter is cut.
cat >"$conf_dir/log4j2.properties" <<'LOG4J'
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = console
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
LOG4J

java_opts=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$conf_dir/log4j2.properties")

if [[ ! -f "$data_dir/meta.properties" ]]; then
  # A cluster id is 16 random bytes in URL-safe base64 without padding (what
  # `kafka-storage.sh random-uuid` prints), made here without a second JVM start.
  cluster_id=${KAFKA_CLUSTER_ID:-$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')}
  # --standalone: this node is the only voter of the controller quorum (Kafka 4 dynamic quorum).
  java -Xmx256m "${java_opts[@]}" -cp "$classpath" kafka.tools.StorageTool format \
    --cluster-id "$cluster_id" --config "$conf_dir/server.properties" --standalone
fi

# shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several options on purpose
exec java ${KAFKA_HEAP_OPTS:--Xms128m -Xmx384m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
  -XX:+ExitOnOutOfMemoryError "${java_opts[@]}" -cp "$classpath" kafka.Kafka "$conf_dir/server.properties"
