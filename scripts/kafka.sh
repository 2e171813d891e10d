#!/usr/bin/env bash
# Herald: a local single-node Apache Kafka broker (KRaft, combined broker+controller)
# for `npm start`, `npm test` and CI. No Docker, no manual install: the broker jars
# come from Maven Central through scripts/kafka/pom.xml. scripts/kafka-cluster.sh runs
# three of these as one replicated cluster (the KAFKA_NODE_ID ... variables below).
#
# Usage: scripts/kafka.sh start|stop|restart|status|logs [-f]|reset|jars
#
#   start    Fetch jars into $KAFKA_DIR/lib (once), write server.properties, format
#            storage (once), start the broker in the background and wait until it
#            accepts clients. Returns at once if the broker is already up.
#   stop     SIGTERM, bounded wait, then SIGKILL.
#   restart  stop + start.
#   status   Prints "running ..." (exit 0) or "stopped"/"not ready" (exit 1).
#   logs     Last $KAFKA_LOG_LINES (default 100) lines of the broker log; -f follows.
#   reset    stop + delete the broker's data (topics, offsets, cluster id).
#   jars     Fetch the jars (once) and print the folder holding them; starts nothing
#            (scripts/image.sh puts them in the Kafka image).
#
# Environment:
#   KAFKA_DIR              state dir (default <repo>/.kafka): lib/, data/, server.properties,
#                          log4j2.properties, kafka.pid, kafka.log
#   KAFKA_PORT             client listener on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 (default 9093)
#   KAFKA_HEAP_OPTS        default "-Xms512m -Xmx512m"
#   KAFKA_JVM_OPTS         default "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 ..." (light on 2 cores)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to come up (default 60)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_LIB_DIR          where the jars go (default $KAFKA_DIR/lib); a cluster's nodes share one
#   KAFKA_NODE_ID          this node's id (default 1)
#   KAFKA_QUORUM_VOTERS    the KRaft controller quorum (default "<node id>@127.0.0.1:<controller port>")
#   KAFKA_CLUSTER_ID       the cluster id to format a new data dir with (default: a random one);
#                          every node of one cluster must be formatted with the same id
#   KAFKA_REPLICATION      replication factor of the internal topics and the broker's default
#                          (default 1: a single node)
#   KAFKA_MIN_ISR          the broker's min.insync.replicas default (default 1)
#   KAFKA_TAKEOVER         1 (default): if another checkout's Herald broker (started by this
#                          script, with a different KAFKA_DIR) holds our ports, stop it first.
#                          0: fail instead.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

KAFKA_DIR="${KAFKA_DIR:-$REPO_ROOT/.kafka}"
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_TAKEOVER="${KAFKA_TAKEOVER:-1}"

# KAFKA_DIR must be absolute: it is baked into server.properties and the process marker.
case "$KAFKA_DIR" in
  /*) ;;
  *) KAFKA_DIR="$(pwd)/$KAFKA_DIR" ;;
esac
KAFKA_DIR="${KAFKA_DIR%/}"

LIB_DIR="${KAFKA_LIB_DIR:-$KAFKA_DIR/lib}"
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_QUORUM_VOTERS="${KAFKA_QUORUM_VOTERS:-$KAFKA_NODE_ID@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT}"
KAFKA_REPLICATION="${KAFKA_REPLICATION:-1}"
KAFKA_MIN_ISR="${KAFKA_MIN_ISR:-1}"
DATA_DIR="$KAFKA_DIR/data"
PID_FILE="$KAFKA_DIR/kafka.pid"
LOG_FILE="$KAFKA_DIR/kafka.log"
SERVER_PROPS="$KAFKA_DIR/server.properties"
LOG4J_PROPS="$KAFKA_DIR/log4j2.properties"
LIB_STAMP="$LIB_DIR/.pom.sha256"
# Logged by kafka.server.KafkaRaftServer once the broker serves requests.
READY_MARKER="Kafka Server started"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { printf 'kafka.sh: error: %s\n' "$*" >&2; exit 1; }

kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}

# ---------------------------------------------------------------- tool checks

require_java() {
  command -v java >/dev/null 2>&1 ||
    die "'java' not found on PATH. Kafka 4.x needs a Java 17+ runtime (Debian: apt-get install -y openjdk-17-jre-headless)."
  local v major
  v="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  major="${v%%.*}"
  [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
  if [[ "$major" =~ ^[0-9]+$ ]] && (( major < 17 )); then
    die "java $v found, but Kafka $(kafka_version) needs Java 17 or newer."
  fi
}

require_mvn() {
  command -v mvn >/dev/null 2>&1 ||
    die "'mvn' not found on PATH. It is needed once to fetch the Kafka jars from Maven Central into $LIB_DIR (Debian: apt-get install -y maven)."
}

# ---------------------------------------------------------------- process helpers

# Is something accepting TCP connections on 127.0.0.1:$1?
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$KAFKA_HOST/$1" 2>/dev/null
}

# Alive and not a zombie (an exited broker whose parent has not reaped it yet is gone for us).
pid_alive() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

# Is $1 a broker started by this script for this KAFKA_DIR?
is_our_broker() {
  local pid="$1"
  pid_alive "$pid" || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  grep -qzx -- "-Dherald.kafka.dir=$KAFKA_DIR" "/proc/$pid/cmdline" 2>/dev/null
}

read_pid() {
  [[ -f "$PID_FILE" ]] || return 0
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
  printf '%s' "$pid"
}

# Pid of our broker (from the pid file, or found by its marker if the pid file is gone).
our_pid() {
  local pid
  pid="$(read_pid)"
  if [[ -n "$pid" ]] && is_our_broker "$pid"; then
    printf '%s' "$pid"
    return 0
  fi
  local f p
  for f in $(grep -lzx -- "-Dherald.kafka.dir=$KAFKA_DIR" /proc/[0-9]*/cmdline 2>/dev/null || true); do
    p="${f#/proc/}"; p="${p%/cmdline}"
    if [[ "$p" != "$$" ]] && is_our_broker "$p"; then
      printf '%s' "$p"
      return 0
    fi
  done
  return 0
}

# Herald brokers from *other* KAFKA_DIRs that use one of our ports.
foreign_brokers() {
  local f p
  for f in $(grep -lzxE -- "-Dherald.kafka.(port|controller.port)=($KAFKA_PORT|$KAFKA_CONTROLLER_PORT)" /proc/[0-9]*/cmdline 2>/dev/null || true); do
    p="${f#/proc/}"; p="${p%/cmdline}"
    [[ "$p" == "$$" ]] && continue
    pid_alive "$p" || continue
    is_our_broker "$p" && continue
    printf '%s\n' "$p"
  done
}

broker_dir_of() {
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | sed -n 's/^-Dherald.kafka.dir=//p' | head -n1
}

ready() {
  local pid="$1"
  is_our_broker "$pid" && port_open "$KAFKA_PORT" && grep -qF "$READY_MARKER" "$LOG_FILE" 2>/dev/null
}

# Send SIGTERM, wait up to KAFKA_STOP_TIMEOUT, then SIGKILL.
terminate() {
  local pid="$1" what="$2" i
  pid_alive "$pid" || return 0
  log "stopping $what (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < KAFKA_STOP_TIMEOUT * 10; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  log "$what (pid $pid) still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  die "could not kill $what (pid $pid)"
}

with_lock() {
  mkdir -p "$KAFKA_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$KAFKA_DIR/.lock"
    flock -w $((KAFKA_START_TIMEOUT + KAFKA_STOP_TIMEOUT + 600)) 9 ||
      die "timed out waiting for another kafka.sh on $KAFKA_DIR"
  fi
}

# ---------------------------------------------------------------- setup steps

ensure_jars() {
  local want have version
  version="$(kafka_version)"
  [[ -n "$version" ]] || die "cannot read <kafka.version> from $POM"
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  have="$(cat "$LIB_STAMP" 2>/dev/null || true)"
  if [[ "$want" == "$have" && -f "$LIB_DIR/kafka_2.13-$version.jar" ]]; then
    return 0
  fi
  require_mvn
  log "fetching Kafka $version jars from Maven Central into $LIB_DIR"
  local tmp="$KAFKA_DIR/lib.tmp.$$"
  rm -rf "$tmp"
  # (Debian's mvn prints stray colour resets even with -B; strip them.)
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' >&2; then
    rm -rf "$tmp"
    die "mvn could not fetch the Kafka jars (see the output above)"
  fi
  [[ -f "$tmp/kafka_2.13-$version.jar" ]] || { rm -rf "$tmp"; die "mvn did not produce kafka_2.13-$version.jar"; }
  printf '%s\n' "$want" >"$tmp/.pom.sha256"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
}

write_config() {
  mkdir -p "$DATA_DIR"
  cat >"$SERVER_PROPS" <<EOF
# Generated by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_QUORUM_VOTERS
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA_DIR

# Internal topics: one replica on a single node, KAFKA_REPLICATION in a cluster.
offsets.topic.replication.factor=$KAFKA_REPLICATION
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$KAFKA_REPLICATION
transaction.state.log.min.isr=$KAFKA_MIN_ISR
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$KAFKA_REPLICATION
share.coordinator.state.topic.min.isr=$KAFKA_MIN_ISR
default.replication.factor=$KAFKA_REPLICATION
min.insync.replicas=$KAFKA_MIN_ISR

# Test-friendly behaviour.
group.initial.rebalance.delay.ms=0
# Consumer sessions down to 1 s (stock floor: 6 s), so tests and the chaos soak can have a killed
# worker's partitions move within a couple of seconds (HERALD_KAFKA_SESSION_TIMEOUT_MS).
group.min.session.timeout.ms=1000
num.partitions=6
auto.create.topics.enable=false
delete.topic.enable=true

# Restart after a hard kill (SIGKILL, crash): the new incarnation can only register once the
# old one's session has expired (default 9 s); keep that short.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=5000

# Light on a 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF

  cat >"$LOG4J_PROPS" <<'EOF'
# Generated by scripts/kafka.sh: everything goes to stdout, which kafka.sh sends to kafka.log.
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
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
logger.netclient.name = org.apache.kafka.clients.NetworkClient
logger.netclient.level = warn
EOF
}

java_cmd() {
  # shellcheck disable=SC2206
  local heap=($KAFKA_HEAP_OPTS) opts=($KAFKA_JVM_OPTS)
  JAVA_CMD=(java "${heap[@]}" "${opts[@]}"
    "-Dlog4j2.configurationFile=$LOG4J_PROPS"
    "-Dkafka.logs.dir=$KAFKA_DIR"
    -cp "$LIB_DIR/*")
}

format_storage() {
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    return 0 # already formatted: never reformat (it would drop the cluster id / data)
  fi
  if [[ -n "$(ls -A "$DATA_DIR" 2>/dev/null)" ]]; then
    log "$DATA_DIR has files but no meta.properties (interrupted format?): clearing it"
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
  fi
  java_cmd
  local id out
  id="${KAFKA_CLUSTER_ID:-$("${JAVA_CMD[@]}" kafka.tools.StorageTool random-uuid 2>>"$KAFKA_DIR/format.log" | tail -n1)}"
  [[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid failed: '$id' (see $KAFKA_DIR/format.log)"
  log "formatting $DATA_DIR with cluster id $id"
  if ! out="$("${JAVA_CMD[@]}" kafka.tools.StorageTool format -t "$id" -c "$SERVER_PROPS" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "StorageTool format failed"
  fi
  printf '%s\n' "$out" >>"$KAFKA_DIR/format.log"
  printf '%s\n' "$id" >"$KAFKA_DIR/cluster.id"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  # Fast path, no lock, no java: already up.
  local pid
  pid="$(our_pid)"
  if [[ -n "$pid" ]] && ready "$pid"; then
    echo "kafka running (pid $pid, $KAFKA_HOST:$KAFKA_PORT)"
    return 0
  fi

  with_lock
  pid="$(our_pid)"
  if [[ -n "$pid" ]]; then
    # Ours and alive but not ready yet: another start is in progress or it is hung.
    wait_ready "$pid" && return 0
    terminate "$pid" "unresponsive kafka broker"
  fi
  rm -f "$PID_FILE"

  # Other checkouts' Herald brokers on our ports (e.g. CI in a fresh clone while the
  # developer tree's broker still runs).
  local other
  for other in $(foreign_brokers); do
    if [[ "$KAFKA_TAKEOVER" == 1 ]]; then
      local other_dir
      other_dir="$(broker_dir_of "$other")"
      terminate "$other" "Herald kafka broker of $other_dir (holds port $KAFKA_PORT/$KAFKA_CONTROLLER_PORT)"
      if [[ -n "$other_dir" && "$(tr -dc '0-9' <"$other_dir/kafka.pid" 2>/dev/null || true)" == "$other" ]]; then
        rm -f "$other_dir/kafka.pid"
      fi
    else
      die "port $KAFKA_PORT/$KAFKA_CONTROLLER_PORT is held by the Herald broker of $(broker_dir_of "$other") (pid $other); stop it with: KAFKA_DIR=$(broker_dir_of "$other") $0 stop"
    fi
  done
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$p"; then
      local holder=""
      command -v ss >/dev/null 2>&1 && holder="$(ss -Hltnp "sport = :$p" 2>/dev/null | sed -n 's/.*users:(\(.*\))/\1/p' | head -n1)"
      die "$KAFKA_HOST:$p is already in use by another process ${holder:+($holder) }(not a broker of $KAFKA_DIR); stop it or set KAFKA_PORT / KAFKA_CONTROLLER_PORT"
    fi
  done

  require_java
  ensure_jars
  write_config
  format_storage

  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  java_cmd
  local start_ts=$SECONDS
  # The herald.* properties are markers: they let this script recognise its broker.
  nohup setsid "${JAVA_CMD[@]}" \
    "-Dherald.kafka=1" "-Dherald.kafka.dir=$KAFKA_DIR" \
    "-Dherald.kafka.port=$KAFKA_PORT" "-Dherald.kafka.controller.port=$KAFKA_CONTROLLER_PORT" \
    kafka.Kafka "$SERVER_PROPS" >"$LOG_FILE" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "started kafka $(kafka_version) (pid $pid), waiting for $KAFKA_HOST:$KAFKA_PORT"
  if wait_ready "$pid"; then
    log "kafka ready in $((SECONDS - start_ts))s"
    return 0
  fi
  terminate "$pid" "kafka broker that did not come up" || true
  rm -f "$PID_FILE"
  log "full log: $LOG_FILE. If $DATA_DIR was written by another Kafka version or is damaged, '$0 reset' deletes it."
  exit 1
}

wait_ready() {
  local pid="$1" i
  for ((i = 0; i < KAFKA_START_TIMEOUT * 5; i++)); do
    if ! pid_alive "$pid"; then
      log "kafka broker (pid $pid) exited during startup; last lines of $LOG_FILE:"
      tail -n 40 "$LOG_FILE" >&2 2>/dev/null || true
      return 1
    fi
    if ready "$pid"; then
      echo "kafka running (pid $pid, $KAFKA_HOST:$KAFKA_PORT)"
      return 0
    fi
    sleep 0.2
  done
  log "kafka broker (pid $pid) not ready after ${KAFKA_START_TIMEOUT}s; last lines of $LOG_FILE:"
  tail -n 40 "$LOG_FILE" >&2 2>/dev/null || true
  return 1
}

cmd_stop() {
  [[ -d "$KAFKA_DIR" ]] || { echo "kafka stopped"; return 0; }
  with_lock
  local pid
  pid="$(our_pid)"
  if [[ -n "$pid" ]]; then
    terminate "$pid" "kafka broker"
  fi
  rm -f "$PID_FILE"
  echo "kafka stopped"
}

cmd_status() {
  local pid
  pid="$(our_pid)"
  if [[ -z "$pid" ]]; then
    [[ -f "$PID_FILE" ]] && echo "kafka stopped (stale pid file $PID_FILE)" || echo "kafka stopped"
    return 1
  fi
  if ready "$pid"; then
    echo "kafka running (pid $pid, $KAFKA_HOST:$KAFKA_PORT, dir $KAFKA_DIR)"
    return 0
  fi
  echo "kafka not ready (pid $pid alive, $KAFKA_HOST:$KAFKA_PORT not serving yet)"
  return 1
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || die "no log yet: $LOG_FILE"
  if [[ "${1:-}" == "-f" ]]; then
    exec tail -n "${KAFKA_LOG_LINES:-100}" -F "$LOG_FILE"
  fi
  tail -n "${KAFKA_LOG_LINES:-100}" "$LOG_FILE"
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA_DIR" "$KAFKA_DIR/cluster.id" "$KAFKA_DIR/format.log"
  echo "kafka data removed ($DATA_DIR)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop && cmd_start ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  reset) cmd_reset ;;
  jars) with_lock && ensure_jars && printf '%s\n' "$LIB_DIR" ;;
  *)
    echo "usage: $0 start|stop|restart|status|logs [-f]|reset|jars" >&2
    exit 2
    ;;
esac
