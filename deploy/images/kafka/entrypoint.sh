#!/bin/sh
# One KRaft node (broker and controller) of a cluster whose voters are listed in
# KAFKA_CONTROLLER_QUORUM_VOTERS ("1@kafka1:9093,2@kafka2:9093,3@kafka3:9093"). Every node of a
# cluster gets the same KAFKA_CLUSTER_ID (22 characters of base64url); storage is formatted with
# it on first start only, so a restart keeps its topics and offsets.
set -eu
: "${KAFKA_NODE_ID:?set KAFKA_NODE_ID}"
: "${KAFKA_CLUSTER_ID:?set KAFKA_CLUSTER_ID}"
: "${KAFKA_CONTROLLER_QUORUM_VOTERS:?set KAFKA_CONTROLLER_QUORUM_VOTERS}"
host="${KAFKA_ADVERTISED_HOST:-$(hostname)}"
replicas="${KAFKA_REPLICATION_FACTOR:-3}"
min_isr="${KAFKA_MIN_INSYNC_REPLICAS:-2}"
data=/var/lib/kafka/data
props=/var/lib/kafka/server.properties
log4j=/var/lib/kafka/log4j2.properties

cat >"$props" <<PROPS
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_CONTROLLER_QUORUM_VOTERS
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093
advertised.listeners=PLAINTEXT://$host:9092
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data
# Every topic, Herald's and Kafka's own, on $replicas brokers; a write needs $min_isr of them, so
# one broker may be lost without losing an acknowledged record or stopping writes.
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
# Herald's workers ask for short sessions (HERALD_KAFKA_SESSION_TIMEOUT_MS, default 6 s).
group.min.session.timeout.ms=1000
# Light on a small machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.segment.bytes=67108864
PROPS

cat >"$log4j" <<'LOG4J'
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.netclient.name = org.apache.kafka.clients.NetworkClient
logger.netclient.level = warn
LOG4J

# The JVM's command line, in "$@": the option lists are meant to split.
# shellcheck disable=SC2086
set -- java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS "-Dlog4j2.configurationFile=$log4j" -cp '/opt/kafka/lib/*'
if [ ! -f "$data/meta.properties" ]; then
  "$@" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$props"
fi
# exec: the JVM is PID 1 and gets the SIGTERM of `podman stop` itself.
exec "$@" kafka.Kafka "$props"
