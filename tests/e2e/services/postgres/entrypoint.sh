#!/bin/bash
# Initialise the cluster on first start (user, password and database from the environment),
# then exec postgres listening on every address with scram-sha-256 password authentication.
#
#   POSTGRES_PASSWORD  required
#   POSTGRES_USER      the superuser created by initdb (default restlake)
#   POSTGRES_DB        a database owned by it (default: the user name)
#   PGDATA             the data directory (default /var/lib/postgresql/e2e/data); its parent
#                      must be writable, e.g. an emptyDir mounted at /var/lib/postgresql/e2e
set -euo pipefail

: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-restlake}
db=${POSTGRES_DB:-$user}

quote_ident() { printf '"%s"' "${1//\"/\"\"}"; }

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  # initdb's pg_hba.conf admits loopback only; the e2e clients are other pods.
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [[ "$db" != postgres ]]; then
    # Single-user mode: no server, no socket, no password needed to create the database.
    echo "CREATE DATABASE $(quote_ident "$db") OWNER $(quote_ident "$user")" \
      | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "e2e-postgres: initialised $PGDATA (user $user, database $db)"
fi

# The socket goes to /tmp: Debian's default (/var/run/postgresql) is not writable by this user
# and the root filesystem may be read-only. Small memory settings: the kind node has 2 cores.
exec postgres -D "$PGDATA" \
  -c listen_addresses='*' \
  -c unix_socket_directories=/tmp \
  -c password_encryption=scram-sha-256 \
  -c max_connections=60 \
  -c shared_buffers=64MB \
  "$@"
