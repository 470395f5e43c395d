#!/usr/bin/env bash
# bench/rss.sh — peak memory (RSS) and wall time of `cairn backup`, `cairn backup --type incr` (after 10 % of
# pgbench_accounts changed) and `cairn restore` (of the incremental: the chain) at several database sizes, to show
# that time grows with the data and memory does not (issues #10 and #20: ≤ 128 MiB, flat).
#
#   source /tmp/cairn-test/env.sh          # scripts/test-env.sh up: PostgreSQL binaries, the S3 emulator (TLS)
#   SCALES="10 50 150" REPOS="local s3" CAIRN_BIN=.build/release/cairn bash bench/rss.sh
#
# Makes a throwaway cluster under $RSS_DIR (default /tmp/cairn-rss) per scale (pgbench -i -s SCALE: about
# 15 MB per scale unit), backs it up and restores it with GNU time's "maximum resident set size", prints one
# table row per run and appends CSV to $RSS_DIR/rss.csv. Run as root (the cluster runs as postgres).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "${CAIRN_BIN:-$HERE/../.build/release/cairn}")
DIR=${RSS_DIR:-/tmp/cairn-rss}
PG=${CAIRN_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
SCALES=${SCALES:-"10 50 150"}
REPOS=${REPOS:-"local s3"}
PARALLELISM=${PARALLELISM:-4}
as_pg() { runuser -u postgres -- "$@"; }
rm -rf "$DIR"; mkdir -p "$DIR"; chown postgres "$DIR"
install -m 755 "$BIN" "$DIR/cairn"
CSV=$DIR/rss.csv
echo "repo,scale,db_bytes,op,wall_s,cpu_s,max_rss_kib" > "$CSV"
printf '%-6s %6s %10s %-8s %8s %8s %10s\n' repo scale db_MiB op wall_s cpu_s rss_MiB

for scale in $SCALES; do
  C=$DIR/s$scale; PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_pg mkdir -p "$C"
  as_pg "$PG/initdb" -D "$C/data" -A trust -U postgres --no-sync >/dev/null
  printf "listen_addresses = ''\nport = %s\nunix_socket_directories = '%s'\nwal_level = replica\nmax_wal_senders = 4\narchive_mode = on\narchive_command = '%s --config %s/cairn.yaml wal-push %%p'\n" \
    "$PORT" "$C" "$DIR/cairn" "$C" >> "$C/data/postgresql.conf"
  for repo in $REPOS; do
    {
      echo "cluster:"
      echo "  connection: \"host=$C port=$PORT user=postgres dbname=postgres\""
      echo "repository:"
      if [ "$repo" = s3 ]; then
        printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$CAIRN_TEST_S3_ACCESS_KEY" "$CAIRN_TEST_S3_SECRET_KEY" > "$C/aws"
        chmod 600 "$C/aws"; chown postgres "$C/aws"
        printf '  type: s3\n  bucket: %s\n  prefix: rss-%s-%s\n  endpoint: %s\n  ca_file: %s\n  region: %s\n  uri_style: path\n  credentials_file: %s\n' \
          "$CAIRN_TEST_S3_BUCKET" "$scale" "$$" "$CAIRN_TEST_S3_TLS_ENDPOINT" "$CAIRN_TEST_S3_CA" "$CAIRN_TEST_S3_REGION" "$C/aws"
      else
        printf '  type: local\n  path: %s/repo-local\n' "$C"
      fi
      printf 'limits:\n  parallelism: %s\n' "$PARALLELISM"
    } > "$C/cairn-$repo.yaml"
    chown postgres "$C/cairn-$repo.yaml"
  done
  first=$(echo "$REPOS" | awk '{print $1}')
  cp "$C/cairn-$first.yaml" "$C/cairn.yaml"; chown postgres "$C/cairn.yaml"
  as_pg "$PG/pg_ctl" -D "$C/data" -l "$C/log" -w start >/dev/null
  as_pg "$PG/pgbench" -i -q -s "$scale" -h "$C" -p "$PORT" postgres >/dev/null 2>&1
  dbbytes=$(as_pg "$PG/psql" -h "$C" -p "$PORT" -XAtc "select sum(pg_database_size(oid)) from pg_database")
  for repo in $REPOS; do
    cfg=$C/cairn-$repo.yaml
    as_pg "$DIR/cairn" --config "$cfg" init >/dev/null
    # archive into this repository while it is backed up
    as_pg "$PG/psql" -h "$C" -p "$PORT" -XAtqc "alter system set archive_command = '$DIR/cairn --config $cfg wal-push %p'" -c "select pg_reload_conf()" >/dev/null
    for op in backup incr restore; do
      if [ "$op" = backup ]; then
        cmd=("$DIR/cairn" --config "$cfg" --quiet backup)
      elif [ "$op" = incr ]; then
        as_pg "$PG/psql" -h "$C" -p "$PORT" -XAtqc "update pgbench_accounts set abalance = abalance + 1 where aid % 10 = 0" postgres >/dev/null
        cmd=("$DIR/cairn" --config "$cfg" --quiet backup --type incr)
      else
        rm -rf "$C/restored"; as_pg mkdir -p "$C/restored"
        cmd=("$DIR/cairn" --config "$cfg" --quiet restore --target-dir "$C/restored/data" --immediate --archive-mode off)
      fi
      out=$( { as_pg /usr/bin/time -f '%e %U %S %M' "${cmd[@]}" >/dev/null; } 2>&1 | tail -1)
      read -r wall user sys rss <<<"$out"
      cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
      echo "$repo,$scale,$dbbytes,$op,$wall,$cpu,$rss" >> "$CSV"
      printf '%-6s %6s %10.0f %-8s %8s %8s %10.1f\n' "$repo" "$scale" "$(echo "$dbbytes/1048576" | bc -l)" "$op" "$wall" "$cpu" "$(echo "$rss/1024" | bc -l)"
    done
  done
  as_pg "$PG/pg_ctl" -D "$C/data" -m immediate -w stop >/dev/null
  rm -rf "$C"
done
echo "CSV: $CSV"
