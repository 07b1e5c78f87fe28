#!/usr/bin/env bash
# A private PostgreSQL cluster for tests: its own data directory and port, run as the postgres
# user, reachable on 127.0.0.1 without a password (trust), its socket in its own directory.
#   pg-test-cluster.sh start <dir> <port>   (creates it on first use; waits until it accepts)
#   pg-test-cluster.sh stop <dir>
set -euo pipefail
command=${1:?start or stop}
dir=${2:?directory}
bin=$(compgen -G "/usr/lib/postgresql/*/bin" | sort -V | tail -n 1)
[ -x "$bin/pg_ctl" ] || { echo "pg-test-cluster: error: no PostgreSQL server (run scripts/install-postgres.sh)" >&2; exit 1; }
as_postgres() { runuser -u postgres -- "$@"; }
case $command in
  start)
    port=${3:?port}
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_postgres "$bin/initdb" -D "$dir/data" --auth=trust -U postgres >"$dir/initdb.log"
    fi
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
    ;;
  stop)
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *)
    echo "pg-test-cluster: error: unknown command $command (start or stop)" >&2
    exit 1
    ;;
esac
