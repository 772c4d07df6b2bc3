#!/bin/bash
# Entrypoint of the e2e PostgreSQL image, doing what the official postgres image's does for this
# project: on first start (empty PGDATA) initdb with POSTGRES_USER/POSTGRES_PASSWORD, create
# POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sh|*.sql, listen on all addresses with
# scram-sha-256 for TCP; then exec the server. Arguments starting with '-' go to postgres.
set -euo pipefail

if [[ $# -eq 0 || "${1:0:1}" == - ]]; then
  set -- postgres "$@"
fi
if [[ "$1" != postgres ]]; then
  exec "$@"
fi

: "${PGDATA:?PGDATA must be set}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the official image refuses to start without it too)}"
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

mkdir -p "$PGDATA"
chmod 0700 "$PGDATA"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  echo "docker-entrypoint: initialising $PGDATA for user $POSTGRES_USER" >&2
  pwfile=$(mktemp /tmp/pgpass.XXXXXX)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA"
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  # Setup on the Unix socket only, as the official image does.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start
  psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --host /var/run/postgresql)
  if [[ "$POSTGRES_DB" != postgres ]]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        echo "docker-entrypoint: running $f" >&2
        bash "$f"
        ;;
      *.sql)
        echo "docker-entrypoint: running $f" >&2
        "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f"
        ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "docker-entrypoint: init done" >&2
fi

exec "$@" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql
