#!/usr/bin/env bash
# Herald: make sure the real infrastructure for `npm start`, `npm test` and CI is up:
#   PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379, Kafka on 127.0.0.1:9092.
# Starts the machine's own PostgreSQL / Redis servers when they are installed but down,
# then runs scripts/kafka.sh start. Idempotent, and quick when everything is already up.
# Exits non-zero with a clear message when something is missing or does not come up.
#
# Environment: PG_HOST/PG_PORT (127.0.0.1/5432), REDIS_HOST/REDIS_PORT (127.0.0.1/6379),
# SERVICES_TIMEOUT (seconds to wait for each of PostgreSQL and Redis, default 30),
# SKIP_KAFKA=1 to leave Kafka alone; KAFKA_* variables are passed on to kafka.sh.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
REDIS_PORT="${REDIS_PORT:-6379}"
SERVICES_TIMEOUT="${SERVICES_TIMEOUT:-30}"

log() { printf 'services.sh: %s\n' "$*" >&2; }
die() { printf 'services.sh: error: %s\n' "$*" >&2; exit 1; }

wait_for() { # wait_for <what> <command...>
  local what="$1" i
  shift
  for ((i = 0; i < SERVICES_TIMEOUT * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "$what did not come up within ${SERVICES_TIMEOUT}s"
}

# ---------------------------------------------------------------- PostgreSQL

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; }

ensure_postgres() {
  command -v pg_isready >/dev/null 2>&1 ||
    die "PostgreSQL client tools are missing ('pg_isready' not on PATH). Install PostgreSQL (Debian: apt-get install -y postgresql)."
  if pg_up; then
    echo "postgres running ($PG_HOST:$PG_PORT)"
    return 0
  fi
  command -v pg_ctlcluster >/dev/null 2>&1 ||
    die "PostgreSQL is not answering on $PG_HOST:$PG_PORT and 'pg_ctlcluster' is missing: the server is not installed (Debian: apt-get install -y postgresql)."
  local version
  # The newest installed version's cluster (a machine normally has exactly one).
  version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n1 || true)"
  [[ -n "$version" && -d "/etc/postgresql/$version/main" ]] ||
    die "PostgreSQL is not answering on $PG_HOST:$PG_PORT and no cluster exists under /etc/postgresql/*/main (Debian: pg_createcluster <version> main)."
  log "starting PostgreSQL $version/main"
  local rc=0
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || rc=$?
  case "$rc" in
    0) ;;
    2) die "PostgreSQL $version/main is already running but does not answer on $PG_HOST:$PG_PORT (check its port/listen_addresses in /etc/postgresql/$version/main/postgresql.conf)" ;;
    *) die "pg_ctlcluster could not start PostgreSQL $version/main (exit $rc; see /var/log/postgresql/postgresql-$version-main.log)" ;;
  esac
  wait_for "PostgreSQL on $PG_HOST:$PG_PORT" pg_up
  echo "postgres running ($PG_HOST:$PG_PORT, started)"
}

# ---------------------------------------------------------------- Redis

redis_up() { [[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

ensure_redis() {
  command -v redis-cli >/dev/null 2>&1 ||
    die "Redis client is missing ('redis-cli' not on PATH). Install Redis (Debian: apt-get install -y redis-server)."
  if redis_up; then
    echo "redis running ($REDIS_HOST:$REDIS_PORT)"
    return 0
  fi
  command -v redis-server >/dev/null 2>&1 ||
    die "Redis is not answering on $REDIS_HOST:$REDIS_PORT and 'redis-server' is missing (Debian: apt-get install -y redis-server)."
  log "starting redis-server on port $REDIS_PORT"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log ||
    die "redis-server did not start (see /var/log/redis/ci.log)"
  wait_for "Redis on $REDIS_HOST:$REDIS_PORT" redis_up
  echo "redis running ($REDIS_HOST:$REDIS_PORT, started)"
}

ensure_postgres
ensure_redis
if [[ "${SKIP_KAFKA:-0}" != 1 ]]; then
  bash "$SCRIPT_DIR/kafka.sh" start
fi
