#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests of the PostgreSQL backend:
# initdb in a temporary directory, started on 127.0.0.1 and a free port with
# the durability the store relies on (fsync, synchronous_commit and
# full_page_writes on). Loopback only, trust authentication: nothing outside
# this machine can reach it, and it is deleted at `stop`.
#
#   eval "$(scripts/pg-test-cluster.sh start)"   # exports DECONFLICT_TEST_DATABASE_URL
#   scripts/pg-test-cluster.sh stop "$DECONFLICT_TEST_PG_DIR"
#
# PG_BIN overrides where initdb and pg_ctl are (default: PostgreSQL 15's).
set -euo pipefail
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}

# initdb and postgres refuse to run as root: run them as `postgres` then.
run_as=()
if [ "$(id -u)" = 0 ]; then
  run_as=(runuser -u postgres --)
fi

case "${1:-}" in
  start)
    for tool in initdb pg_ctl; do
      [ -x "$bin/$tool" ] || { echo "$bin/$tool not found: install postgresql-15 or set PG_BIN" >&2; exit 1; }
    done
    dir=$(mktemp -d "${TMPDIR:-/tmp}/deconflict-test-pg.XXXXXX")
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    "${run_as[@]}" "$bin/initdb" -D "$dir/data" -U deconflict --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # Every test makes its own database and each server holds a reader
    # pool: room for the parallel tests' connections.
    cat >>"$dir/data/postgresql.conf" <<CONF

# deconflict tests
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 400
CONF
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    echo "export DECONFLICT_TEST_DATABASE_URL='postgres://deconflict@127.0.0.1:$port/postgres'"
    echo "export DECONFLICT_TEST_PG_DIR='$dir'"
    ;;
  stop)
    dir=${2:?usage: $0 stop DIR}
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
