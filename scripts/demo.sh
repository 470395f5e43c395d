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

step "some data: pgbench tables and a table we will look for after the restore"
as_pg "$PGBIN/pgbench" -i -q -s 5 -h "$DEMO/sock" -p "$PORT" -U postgres postgres 2>&1 | tail -n 1
psql -c "CREATE TABLE orders (id bigserial PRIMARY KEY, item text, at timestamptz DEFAULT clock_timestamp())"
psql -c "INSERT INTO orders (item) SELECT 'before-backup-' || g FROM generate_series(1, 1000) g"

step "cairn backup: a full backup streamed into $DEMO/repo"
cairn backup

step "more work after the backup, then a mistake"
psql -c "INSERT INTO orders (item) SELECT 'after-backup-' || g FROM generate_series(1, 500) g"
GOOD=$(psql -c "SELECT count(*) || ' orders, checksum ' || md5(string_agg(item, ',' ORDER BY id)) FROM orders")
sleep 1
TARGET=$(psql -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1
psql -c "DELETE FROM orders WHERE id % 3 = 0"   # the mistake
echo "state before the mistake: $GOOD"
echo "the mistake happened after: $TARGET"
psql -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 100); do   # wait until the archiver has shipped the WAL holding the mistake
  [ "$(psql -c "SELECT last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) FROM pg_stat_archiver")" = t ] && break
  sleep 0.2
done

step "cairn info: backups, WAL archive, recoverable window"
cairn info

step "cairn restore --dry-run: what a restore to just before the mistake would do"
cairn restore --target-time "$TARGET" --dry-run

step "cairn restore: lay out the backup in $DEMO/restored and recover to $TARGET"
cairn restore --target-dir "$DEMO/restored" --target-time "$TARGET" --archive-mode off
RPORT=$((PORT + 1))
printf "port = %s\nunix_socket_directories = '%s'\n" "$RPORT" "$DEMO/sock" >> "$DEMO/restored/postgresql.auto.conf"
as_pg "$PGBIN/pg_ctl" -D "$DEMO/restored" -l "$DEMO/restored.log" -w start >/dev/null
for _ in $(seq 300); do
  [ "$(as_pg "$PGBIN/psql" -h "$DEMO/sock" -p "$RPORT" -U postgres -XAtqc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
  sleep 0.2
done
grep -E "restored log file|recovery stopping|archive recovery complete" "$DEMO/restored.log" | sed 's/^/  postgres: /'

step "check: the restored cluster has the orders as they were before the mistake"
RESTORED=$(as_pg "$PGBIN/psql" -h "$DEMO/sock" -p "$RPORT" -U postgres -XAtqc \
  "SELECT count(*) || ' orders, checksum ' || md5(string_agg(item, ',' ORDER BY id)) FROM orders")
echo "source before the mistake: $GOOD"
echo "restored:                  $RESTORED"
if [ "$RESTORED" = "$GOOD" ]; then
  echo "OK: point-in-time restore brought back exactly the data before the mistake."
else
  echo "FAILED: the restored data differs" >&2
  exit 1
fi

echo
echo "Demo finished: the repository is at $DEMO/repo (removed on exit unless CAIRN_DEMO_KEEP=1)."
