#!/usr/bin/env bash
# A throw-away PostgreSQL server for the engine suite on PostgreSQL (ctest fixture "engine_pg").
#   pg_fixture.sh start STATE   initdb in a new temp dir, start on a free 127.0.0.1 port and a unix socket in that
#                               dir, write the libpq URL to STATE (a file) and the dir to STATE.dir
#   pg_fixture.sh stop STATE    stop that server by its PID (SIGQUIT = immediate shutdown), remove the dir
# initdb and postgres refuse to run as root: as root, they run as the unprivileged user `nobody` (runuser).
# Durability is off (fsync, full_page_writes): the data is thrown away after the run.
set -euo pipefail

cmd=${1:?start|stop}
state=${2:?state file}

bindir=""
for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /x/x)")" /usr/lib/postgresql/*/bin; do
  if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir=$d; fi
done
[ -n "$bindir" ] || { echo "pg_fixture: no initdb/pg_ctl (Debian: postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

stop() {
  [ -f "$state.dir" ] || return 0
  local dir pid
  dir=$(cat "$state.dir")
  if [ -f "$dir/data/postmaster.pid" ]; then
    pid=$(head -n1 "$dir/data/postmaster.pid")
    if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then # immediate shutdown of that postmaster alone
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
  rm -f "$state" "$state.dir"
}

case $cmd in
start)
  stop # a previous run killed half-way
  dir=$(mktemp -d /tmp/parkway-pg.XXXXXX)
  echo "$dir" >"$state.dir"
  if [ "$(id -u)" -eq 0 ]; then chown nobody "$dir"; fi
  chmod 700 "$dir"
  as_owner "$bindir/initdb" -D "$dir/data" -U parkway -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; stop; exit 1; }
  # A free port: try random ones until the server starts (another test may take one between check and use).
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 30000))
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -h 127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=40" \
        start >/dev/null 2>&1; then
      echo "postgresql://parkway@/postgres?host=$dir&port=$port" >"$state"
      exit 0
    fi
  done
  cat "$dir/server.log" >&2
  stop
  exit 1
  ;;
stop)
  stop
  ;;
*)
  echo "pg_fixture: unknown command $cmd" >&2
  exit 2
  ;;
esac
