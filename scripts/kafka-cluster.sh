#!/usr/bin/env bash
# Herald: a local 3-broker Apache Kafka cluster (KRaft; every node is a broker and one of the
# three controller voters), for trying replication and broker loss on one machine. Each node is
# a scripts/kafka.sh broker with its own dir, ports and node id, formatted with one shared
# cluster id; the jars are fetched once and shared.
#
# Usage: scripts/kafka-cluster.sh start|stop|status|reset|bootstrap
#        scripts/kafka-cluster.sh stop-node N|start-node N|kill-node N     (N = 1, 2 or 3)
#
#   start      Starts the three nodes together (a node only finishes starting once a quorum of
#              controllers is up, so they cannot be started one after the other) and waits for all.
#   bootstrap  Prints the KAFKA_BROKERS value for Herald: 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#   stop-node  SIGTERM one node (a controlled shutdown: its partitions' leadership moves first).
#   kill-node  SIGKILL one node (a crash).
#
# Environment:
#   KAFKA_CLUSTER_DIR   state dir (default <repo>/.kafka-cluster): node1/, node2/, node3/, cluster.id
#   KAFKA_CLUSTER_PORT  first client port (default 19092): node N listens on PORT+N-1, and its
#                       controller on PORT+100+N-1
#   KAFKA_CLUSTER_PORTS, KAFKA_CLUSTER_CONTROLLER_PORTS
#                       or three ports each, comma-separated (tests take free ones)
#   KAFKA_REPLICATION   default replication factor (default 3); KAFKA_MIN_ISR (default 2)
#   KAFKA_HEAP_OPTS     per node (default "-Xms256m -Xmx384m": three share the machine)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
KAFKA_SH="$SCRIPT_DIR/kafka.sh"

CLUSTER_DIR="${KAFKA_CLUSTER_DIR:-$REPO_ROOT/.kafka-cluster}"
case "$CLUSTER_DIR" in /*) ;; *) CLUSTER_DIR="$(pwd)/$CLUSTER_DIR" ;; esac
BASE_PORT="${KAFKA_CLUSTER_PORT:-19092}"
NODES=(1 2 3)
export KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$REPO_ROOT/.kafka/lib}"
export KAFKA_REPLICATION="${KAFKA_REPLICATION:-3}"
export KAFKA_MIN_ISR="${KAFKA_MIN_ISR:-2}"
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx384m}"
# Another cluster's or the single broker's ports are never ours to take.
export KAFKA_TAKEOVER=0

log() { printf 'kafka-cluster.sh: %s\n' "$*" >&2; }
die() { printf 'kafka-cluster.sh: error: %s\n' "$*" >&2; exit 1; }

IFS=, read -r -a CLIENT_PORTS <<<"${KAFKA_CLUSTER_PORTS:-$BASE_PORT,$((BASE_PORT + 1)),$((BASE_PORT + 2))}"
IFS=, read -r -a CONTROLLER_PORTS <<<"${KAFKA_CLUSTER_CONTROLLER_PORTS:-$((BASE_PORT + 100)),$((BASE_PORT + 101)),$((BASE_PORT + 102))}"
((${#CLIENT_PORTS[@]} == 3 && ${#CONTROLLER_PORTS[@]} == 3)) || die "KAFKA_CLUSTER_PORTS and KAFKA_CLUSTER_CONTROLLER_PORTS need three ports each"

client_port() { echo "${CLIENT_PORTS[$1 - 1]}"; }
controller_port() { echo "${CONTROLLER_PORTS[$1 - 1]}"; }

voters() {
  local n out=""
  for n in "${NODES[@]}"; do out+="${out:+,}$n@127.0.0.1:$(controller_port "$n")"; done
  echo "$out"
}

# Runs kafka.sh for node $1 with the rest of the arguments.
node() {
  local n="$1"
  shift
  KAFKA_DIR="$CLUSTER_DIR/node$n" KAFKA_NODE_ID="$n" KAFKA_PORT="$(client_port "$n")" \
    KAFKA_CONTROLLER_PORT="$(controller_port "$n")" KAFKA_QUORUM_VOTERS="$(voters)" \
    KAFKA_CLUSTER_ID="$(cluster_id)" bash "$KAFKA_SH" "$@"
}

# One id for every node, made once (any 22-character base64url of 16 bytes is a valid one).
cluster_id() {
  local f="$CLUSTER_DIR/cluster.id"
  if [[ ! -s "$f" ]]; then
    mkdir -p "$CLUSTER_DIR"
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$f"
  fi
  cat "$f"
}

check_node() {
  [[ "${1:-}" =~ ^[123]$ ]] || die "node must be 1, 2 or 3 (got '${1:-}')"
}

cmd_start() {
  mkdir -p "$CLUSTER_DIR"
  cluster_id >/dev/null
  # Once, before the nodes start in parallel and would race for it.
  KAFKA_DIR="$REPO_ROOT/.kafka" bash "$KAFKA_SH" jars >/dev/null
  local n pids=() failed=0
  for n in "${NODES[@]}"; do
    node "$n" start >"$CLUSTER_DIR/start$n.log" 2>&1 &
    pids+=($!)
  done
  for n in "${!pids[@]}"; do
    if ! wait "${pids[$n]}"; then
      failed=1
      log "node $((n + 1)) did not start:"
      tail -n 20 "$CLUSTER_DIR/start$((n + 1)).log" >&2 || true
    fi
  done
  ((failed == 0)) || die "cluster did not start"
  echo "kafka cluster running: $(cmd_bootstrap)"
}

cmd_stop() {
  local n
  for n in "${NODES[@]}"; do node "$n" stop >/dev/null 2>&1 & done
  wait
  echo "kafka cluster stopped"
}

cmd_status() {
  local n rc=0
  for n in "${NODES[@]}"; do
    printf 'node %s: ' "$n"
    node "$n" status || rc=1
  done
  return $rc
}

cmd_bootstrap() {
  local n out=""
  for n in "${NODES[@]}"; do out+="${out:+,}127.0.0.1:$(client_port "$n")"; done
  echo "$out"
}

cmd_kill_node() {
  local pid
  pid="$(tr -dc '0-9' <"$CLUSTER_DIR/node$1/kafka.pid" 2>/dev/null || true)"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || die "node $1 is not running"
  kill -KILL "$pid"
  echo "kafka node $1 killed (pid $pid)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  bootstrap) cmd_bootstrap ;;
  reset) cmd_stop && rm -rf "$CLUSTER_DIR" && echo "kafka cluster data removed ($CLUSTER_DIR)" ;;
  stop-node) check_node "${2:-}" && node "$2" stop ;;
  start-node) check_node "${2:-}" && node "$2" start ;;
  kill-node) check_node "${2:-}" && cmd_kill_node "$2" ;;
  *)
    echo "usage: $0 start|stop|status|reset|bootstrap|stop-node N|start-node N|kill-node N" >&2
    exit 2
    ;;
esac
