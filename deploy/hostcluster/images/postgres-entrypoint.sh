#!/bin/bash
# The part of the official image's entrypoint the chart relies on: initialise an empty
# PGDATA with POSTGRES_USER/POSTGRES_PASSWORD, run /docker-entrypoint-initdb.d/*.sql|*.sh
# once on a socket-only server, then exec postgres with the container's arguments.
set -euo pipefail
if [[ ${1:-} == -* ]]; then set -- postgres "$@"; fi
if [[ ${1:-} == postgres && ! -s $PGDATA/PG_VERSION ]]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 -D "$PGDATA"
  rm -f "$pwfile"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start
  psql=(psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$user" --no-password)
  if [[ $db != postgres ]]; then "${psql[@]}" -d postgres -c "CREATE DATABASE \"$db\""; fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sql) echo "initdb.d: $f"; "${psql[@]}" -d "$db" -f "$f" ;;
      *.sh)
        echo "initdb.d: $f"
        # shellcheck disable=SC1090  # the user's init scripts
        . "$f"
        ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec "$@"
