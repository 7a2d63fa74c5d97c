#!/bin/bash
# The part of the official postgres image's entrypoint the compose deployment relies on:
# POSTGRES_USER (the superuser), POSTGRES_DB, POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE; on
# the first start a cluster in $PGDATA (password authentication over the network, SCRAM), then
# the server on every address, as the postgres user. Starts as root to read the secret file.
set -euo pipefail
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [[ -n ${POSTGRES_PASSWORD_FILE:-} ]]; then
  password=$(<"$POSTGRES_PASSWORD_FILE")
else
  password=${POSTGRES_PASSWORD:-}
fi
unset POSTGRES_PASSWORD
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

if [[ $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
fi
if [[ ! -s $PGDATA/PG_VERSION ]]; then
  [[ -n $password ]] || { echo "POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is required" >&2; exit 1; }
  pwfile=$(mktemp)
  chown postgres "$pwfile"
  printf '%s\n' "$password" >"$pwfile"
  as_postgres initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [[ $db != postgres ]]; then
    printf 'CREATE DATABASE "%s" OWNER "%s";\n' "$db" "$user" \
      | as_postgres postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "docker-entrypoint: initialised $PGDATA (user $user, database $db)" >&2
fi
unset password
[[ ${1:-} == postgres ]] && set -- "$@" -c listen_addresses='*'
if [[ $(id -u) == 0 ]]; then
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
fi
exec "$@"
