#!/usr/bin/env bash
# demo.sh — the README's demo: installs what is missing, builds cairn, creates a throwaway PostgreSQL 15
# cluster, and walks through Cairn against a local-folder repository. Everything lives under
# $CAIRN_DEMO_DIR (default /tmp/cairn-demo) and is removed at the end unless CAIRN_DEMO_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
DEMO=${CAIRN_DEMO_DIR:-/tmp/cairn-demo}
PGBIN=/usr/lib/postgresql/15/bin
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_pg() { runuser -u postgres -- "$@"; }

step "install dependencies"
bash scripts/install-deps.sh

step "build cairn (release)"
swift build -c release --product cairn 2>&1 | tail -n 1
install -m 755 .build/release/cairn /usr/local/bin/cairn
cairn --version

cleanup() {
  [ -f "$DEMO/pg/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$DEMO/pg" -m fast stop >/dev/null 2>&1 || true
  [ -f "$DEMO/restored/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$DEMO/restored" -m fast stop >/dev/null 2>&1 || true
  [ "${CAIRN_DEMO_KEEP:-0}" = 1 ] || rm -rf "$DEMO"
}
trap cleanup EXIT
cleanup
mkdir -p "$DEMO"/{sock,repo}
chown -R postgres:postgres "$DEMO"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')

step "a throwaway PostgreSQL 15 cluster on port $PORT"
as_pg "$PGBIN/initdb" -D "$DEMO/pg" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$DEMO/pg/postgresql.conf" <<EOC
listen_addresses = ''
port = $PORT
unix_socket_directories = '$DEMO/sock'
wal_level = replica
archive_mode = on
archive_command = '/usr/local/bin/cairn --config $DEMO/cairn.yaml wal-push %p'
archive_timeout = 60
EOC
cat > "$DEMO/cairn.yaml" <<EOC
cluster:
  connection: "host=$DEMO/sock port=$PORT user=postgres dbname=postgres"
  data_directory: $DEMO/pg
  bin_directory: $PGBIN
repository:
  type: local
  path: $DEMO/repo
compression:
  level: 3
EOC
chown postgres:postgres "$DEMO/cairn.yaml"
as_pg "$PGBIN/pg_ctl" -D "$DEMO/pg" -l "$DEMO/pg.log" -w start >/dev/null
psql() { as_pg "$PGBIN/psql" -h "$DEMO/sock" -p "$PORT" -U postgres -XAtq "$@"; }
cairn() { as_pg /usr/local/bin/cairn --config "$DEMO/cairn.yaml" "$@"; }

step "cairn config show"
cairn config show

step "cairn init: create the repository for this cluster"
cairn init

step "cairn check: configuration, cluster and repository"
cairn check

echo
echo "Demo finished: the repository is at $DEMO/repo (removed on exit unless CAIRN_DEMO_KEEP=1)."
