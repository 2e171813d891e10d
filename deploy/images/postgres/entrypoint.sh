#!/bin/sh
# Creates the cluster on first start (POSTGRES_PASSWORD set: password auth for every network
# client; unset: trust, for a throwaway database only), then runs postgres as PID 1.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U postgres --encoding=UTF8 --no-locale --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pwfile" >/dev/null
    rm -f "$pwfile"
    method=scram-sha-256
  else
    initdb -D "$PGDATA" -U postgres --encoding=UTF8 --no-locale --auth=trust >/dev/null
    method=trust
  fi
  printf 'host all all 0.0.0.0/0 %s\nhost all all ::/0 %s\n' "$method" "$method" >>"$PGDATA/pg_hba.conf"
  echo "postgres-entrypoint: cluster created in $PGDATA (network auth: $method)"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c max_connections="${POSTGRES_MAX_CONNECTIONS:-200}" "$@"
