#!/usr/bin/env bash
# bench-delta.sh — delta restore against full restore, for Cairn and pgBackRest, on the shared harness
# (../shared/bench: its env-up.sh and load-data.sh first). As issue 21 asks: a full backup, restored into a folder
# (started, recovered to consistency, promoted and stopped, as bench-restore.sh leaves it); then a contiguous
# CHANGE_PCT % (default 1) of pgbench_accounts updated on the source and a second full backup. Then RUNS rounds of,
# interleaved: the second backup restored in full into an empty folder, and delta-restored onto a fresh copy of the
# first restore (the copy is made before the clock starts); each result started, recovered to consistency and
# checked against the source. Output: $RESULTS_DIR/delta.csv.
# Run from anywhere: HARNESS=/work/shared/bench TOOL=pgbackrest bash bench/bench-delta.sh
#                    HARNESS=/work/shared/bench TOOL_PLUGIN=bench/cairn-plugin.sh CAIRN_BIN=… bash bench/bench-delta.sh
HARNESS=${HARNESS:-$(cd "$(dirname "$0")/../../shared/bench" && pwd)}
. "$HARNESS/lib.sh"; . "$TOOL_PLUGIN"
RUNS=${RUNS:-3}; CHANGE_PCT=${CHANGE_PCT:-1}
export REPO=${REPO:-s3} COMPRESS_TYPE=zst COMPRESS_LEVEL=3 PROCESS_MAX=${PROCESS_MAX:-2}
OUT=$RESULTS_DIR/delta.csv
HDR=tool,repo,run,kind,wall_s,cpu_user_s,cpu_sys_s,moto_cpu_s,tls_cpu_s,machine_cpu_s,rows_ok
CHECK_SQL="SELECT (SELECT count(*)||':'||sum(abalance::bigint) FROM pgbench_accounts)||'/'||(SELECT count(*) FROM pgbench_branches)"

# The delta restore of each tool (pgBackRest's --delta compares files by SHA-1; Cairn's by SHA-256, then blocks).
if ! declare -F tool_delta_restore >/dev/null; then
  case $TOOL in
    pgbackrest) tool_delta_restore() { pgbr --pg1-path="$1" --delta --type=immediate --target-action=promote restore; } ;;
    *) echo "$TOOL: the plugin has no tool_delta_restore; skipped"; exit 0 ;;
  esac
fi
export -f tool_delta_restore 2>/dev/null || true

start() {  # DIR → port of the started, promoted cluster
  local port; port=$(free_port)
  as_pg "$PGBIN/pg_ctl" -D "$1" -l "$BENCH_STATE/log/delta-pg.log" -w -t 900 start \
    -o "-p $port -c archive_mode=off -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PGHOST -c shared_buffers=256MB" >/dev/null
  for _ in $(seq 600); do [ "$(as_pg psql -h "$PGHOST" -p "$port" -XAtqc 'SELECT pg_is_in_recovery()' postgres 2>/dev/null)" = f ] && break; sleep 0.2; done
  echo "$port"
}
stop() { as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w stop >/dev/null; }
fresh() { rm -rf "$1"; mkdir -m 700 "$1"; chown "$PGUSER_OS" "$1"; }
measure() {  # kind dir function
  local kind=$1 dir=$2 fn=$3 s0 s1 b0 b1 wall usr sys port got
  wait_quiet; s0=$(srv_cpu); b0=$(busy_cpu); timed "$BENCH_STATE/time.out" "$fn" "$dir"; s1=$(srv_cpu); b1=$(busy_cpu)
  read -r wall usr sys < "$BENCH_STATE/time.out"
  port=$(start "$dir"); got=$(as_pg psql -h "$PGHOST" -p "$port" -XAtqc "$CHECK_SQL" postgres); stop "$dir"
  csv_row "$OUT" "$HDR" "$TOOL" "$REPO" "$run" "$kind" "$wall" "$usr" "$sys" "$(cpu_delta "$s0" "$s1")" \
    "$(busy_delta "$b0" "$b1")" "$([ "$got" = "$expected" ] && echo yes || echo "NO($got)")"
  tail -1 "$OUT"
}

export REPO_PATH=/$TOOL-$REPO-delta-$$
tool_setup; set_archive_command "$(tool_archive_command)"; psqlc CHECKPOINT
tool_backup
LIVED=$BENCH_STATE/delta-lived; TARGET=$BENCH_STATE/delta-target; FULL=$BENCH_STATE/delta-full
fresh "$LIVED"; tool_restore "$LIVED"; start "$LIVED" >/dev/null; stop "$LIVED"
rows=$(psqlc "SELECT count(*) FROM pgbench_accounts")
psqlc "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $((rows * CHANGE_PCT / 100))" >/dev/null
psqlc CHECKPOINT
expected=$(psqlc "$CHECK_SQL")
tool_backup
for run in $(seq "$RUNS"); do
  fresh "$FULL"; measure full "$FULL" tool_restore
  rm -rf "$TARGET"; cp -a "$LIVED" "$TARGET"; sync; measure delta "$TARGET" tool_delta_restore
done
echo "expected=$expected"
rm -rf "$LIVED" "$TARGET" "$FULL"; [ "${KEEP_REPO:-0}" = 1 ] || tool_clean
set_archive_command /bin/true
