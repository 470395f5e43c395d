#!/usr/bin/env bash
# bench/wal-cpu.sh — where WAL archiving's CPU goes, per segment, without the drain's noise.
# Runs inside ../shared/bench's environment (env-up.sh first; load-data.sh for the pgbench tables). It makes
# SEGMENTS real WAL segments with the archiving benchmark's update script, copies them into a scratch pg_wal
# with `.ready` marks, and then measures, as CPU milliseconds per segment (perf stat task-clock):
#   worker  — `cairn wal-push-ahead` pushing them all to the bench S3 (TLS, SigV4), records included
#   ack     — `sh -c 'cairn wal-push %p'` acknowledging each one from its record (what the archiver starts)
#   sync    — `cairn wal-push %p` storing each one itself (archive.async off)
#   zstd    — `zstd -3` of each segment to /dev/null (the compression floor every tool pays)
#   moto/tls— the emulator's and nginx's CPU during the worker run
# Usage: TOOL_PLUGIN=/path/to/cairn/bench/cairn-plugin.sh CAIRN_BIN=... SEGMENTS=60 bash bench/wal-cpu.sh
set -euo pipefail
BENCH=${BENCH:-$(cd "$(dirname "$0")/../../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}
. "$BENCH/lib.sh"; . "$TOOL_PLUGIN"
SEGMENTS=${SEGMENTS:-60}
export REPO=s3 COMPRESS_TYPE=zst COMPRESS_LEVEL=${COMPRESS_LEVEL:-3} PROCESS_MAX=${PROCESS_MAX:-2}
W=$BENCH_STATE/walcpu; rm -rf "$W"; mkdir -p "$W/pg_wal/archive_status"
cpu_ms() { perf stat -x, -e task-clock -o "$W/perf.$1" -- "${@:2}" >/dev/null; awk -F, '/task-clock/{printf "%.1f", $1}' "$W/perf.$1"; }
per() { awk -v a="$1" -v n="$2" 'BEGIN{printf "%.1f", a/n}'; }

# 1. Real segments: pause archiving, generate, copy the finished ones, resume.
printf '\\set a random(1, 100000 * %d - 10000)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN :a AND :a + 9999;\n' \
  "$(psqlc "SELECT count(*) FROM pgbench_branches")" > "$BENCH_STATE/walgen.sql"; chmod 644 "$BENCH_STATE/walgen.sql"
set_archive_command ''
start=$(psqlc "SELECT pg_current_wal_lsn()")
PGOPTIONS='-c synchronous_commit=off' as_pg pgbench -h "$PGHOST" -p "$PGPORT" -n -c 2 -j 2 -T 900 -f "$BENCH_STATE/walgen.sql" postgres >/dev/null 2>&1 & PGB=$!
until [ "$(psqlc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$start') >= ($SEGMENTS + 2)::bigint * 16*1024*1024")" = t ]; do sleep 1; done
kill $(pgrep -P "$PGB") "$PGB" 2>/dev/null; wait "$PGB" 2>/dev/null || true
psqlc "SELECT pg_switch_wal()" >/dev/null; sleep 1
for r in $(ls "$PGDATA/pg_wal/archive_status" | grep '\.ready$' | sort | tail -n "$SEGMENTS"); do
  cp "$PGDATA/pg_wal/${r%.ready}" "$W/pg_wal/"; touch "$W/pg_wal/archive_status/$r"
done
set_archive_command /bin/true
chown -R "$PGUSER_OS" "$W"; n=$(ls "$W/pg_wal/archive_status" | wc -l)
segs=$(ls "$W/pg_wal" | grep -E '^[0-9A-F]{24}$')

# 2. The worker pushes them all (async repository), then the archiver-style acknowledgements.
export ARCHIVE_ASYNC=y REPO_PATH=/$TOOL-walcpu-async-$$; tool_setup
s0=$(srv_cpu); worker=$(cpu_ms worker runuser -u "$PGUSER_OS" -- "$CAIRN_EXE" --config "$CAIRN_CONF" wal-push-ahead "$W/pg_wal"); s1=$(srv_cpu)
recs=$(ls "$W/pg_wal/cairn-archive" | grep -c '\.ok$' || true)
[ "$recs" = "$n" ] || { echo "the worker recorded $recs of $n segments" >&2; exit 1; }
printf 'cd %s\n' "$W" > "$W/ack.sh"
for s in $segs; do printf '%s --config %s wal-push pg_wal/%s\n' "$CAIRN_EXE" "$CAIRN_CONF" "$s" >> "$W/ack.sh"; done
ack=$(cpu_ms ack runuser -u "$PGUSER_OS" -- sh "$W/ack.sh")
read -r _ ab < <(tool_repo_bytes); tool_clean
moto_tls=$(cpu_delta "$s0" "$s1")

# 3. Synchronous pushes, one process per segment.
rm -rf "$W/pg_wal/cairn-archive"
export ARCHIVE_ASYNC=n REPO_PATH=/$TOOL-walcpu-sync-$$; tool_setup
sync=$(cpu_ms sync runuser -u "$PGUSER_OS" -- sh "$W/ack.sh"); tool_clean

# 4. The floor: zstd -3 of the same segments.
z=$(cpu_ms zstd sh -c "cd '$W/pg_wal' && for s in $(echo $segs); do zstd -q -$COMPRESS_LEVEL -c \$s >/dev/null; done")

echo "segments=$n stored_bytes_per_segment=$((ab / n))"
echo "cpu_ms_per_segment worker=$(per "$worker" "$n") ack=$(per "$ack" "$n") sync=$(per "$sync" "$n") zstd_cli=$(per "$z" "$n") moto=$(awk -F, -v n="$n" '{printf "%.1f", $1*1000/n}' <<<"$moto_tls") tls=$(awk -F, -v n="$n" '{printf "%.1f", $2*1000/n}' <<<"$moto_tls")"
