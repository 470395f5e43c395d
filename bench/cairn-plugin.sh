# bench/cairn-plugin.sh — Cairn's plugin for the peer benchmark in ../shared/bench (contract: its
# tools/TEMPLATE.sh). Run any bench script with TOOL_PLUGIN=/path/to/cairn/bench/cairn-plugin.sh; see
# bench/README.md. CAIRN_BIN (default: this repository's .build/release/cairn) is copied under
# $BENCH_STATE so the postgres OS user can run it from archive_command and restore_command.
# Settings map as: COMPRESS_TYPE must be zst (Cairn stores zstd only), COMPRESS_LEVEL -> compression.level,
# PROCESS_MAX -> limits.parallelism (files read and compressed at once by a backup, as pgBackRest's process-max;
# parallel part uploads, bundle restores, WAL pushes and prefetch) and compression.threads (zstd workers, so a
# lane holding one large file still uses every core). The data directory is on this host, so backups use
# cluster.backup_method auto -> files (BACKUP_METHOD=stream forces the BASE_BACKUP stream instead).
# ARCHIVE_ASYNC=y -> archive.async: true (a backlog starts a background worker that pushes the .ready files in
# parallel; wal-push acknowledges each from the worker's record of its confirmed push), as pgBackRest's archive-async.
CAIRN_PLUGIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CAIRN_SRC_BIN=${CAIRN_BIN:-$CAIRN_PLUGIN_DIR/../.build/release/cairn}
CAIRN_DIR=$BENCH_STATE/cairn
CAIRN_EXE=$CAIRN_DIR/cairn
CAIRN_CONF=$CAIRN_DIR/cairn.yaml          # stable path: archive_command references it
cairnw() { as_pg "$CAIRN_EXE" --config "$CAIRN_CONF" "$@"; }

tool_version() { "$CAIRN_SRC_BIN" --version | sed 's/^/cairn /'; }

tool_setup() {
  [ -x "$CAIRN_SRC_BIN" ] || { echo "cairn: no binary at $CAIRN_SRC_BIN (swift build -c release, or set CAIRN_BIN)" >&2; return 1; }
  if [ "${COMPRESS_TYPE:-zst}" != zst ]; then
    echo "cairn: stores zstd only; using zst instead of ${COMPRESS_TYPE}" >&2
    export COMPRESS_TYPE=zst
  fi
  export COMPRESS_LEVEL=${COMPRESS_LEVEL:-3}
  mkdir -p "$CAIRN_DIR"
  install -m 755 "$CAIRN_SRC_BIN" "$CAIRN_EXE"
  {
    echo "cluster:"
    echo "  connection: \"host=$PGHOST port=$PGPORT user=postgres dbname=postgres\""
    echo "  data_directory: $PGDATA"
    echo "  bin_directory: ${PGBIN:-/usr/lib/postgresql/15/bin}"
    echo "  backup_method: ${BACKUP_METHOD:-auto}"
    echo "repository:"
    if [ "${REPO:-s3}" = s3 ]; then
      printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$S3_KEY" "$S3_SECRET" > "$CAIRN_DIR/aws-credentials"
      echo "  type: s3"
      echo "  bucket: $S3_BUCKET"
      echo "  prefix: ${REPO_PATH#/}"
      echo "  endpoint: $S3_URL"
      echo "  ca_file: $S3_CA"
      echo "  region: $S3_REGION"
      echo "  uri_style: path"
      echo "  credentials_file: $CAIRN_DIR/aws-credentials"
    else
      mkdir -p "$BENCH_STATE/cairn-repo"
      echo "  type: local"
      echo "  path: $BENCH_STATE/cairn-repo$REPO_PATH"
    fi
    echo "compression:"
    echo "  level: $COMPRESS_LEVEL"
    echo "  threads: ${PROCESS_MAX:-2}"          # zstd workers: pgBackRest's process-max compresses in parallel too
    echo "limits:"
    echo "  parallelism: ${PROCESS_MAX:-2}"
    if [ "${ARCHIVE_ASYNC:-n}" = y ]; then
      echo "archive:"
      echo "  async: true"
    fi
  } > "$CAIRN_CONF"
  chown -R "$PGUSER_OS" "$CAIRN_DIR"
  [ ! -d "$BENCH_STATE/cairn-repo" ] || chown "$PGUSER_OS" "$BENCH_STATE/cairn-repo"
  chmod 700 "$CAIRN_DIR"
  [ ! -f "$CAIRN_DIR/aws-credentials" ] || chmod 600 "$CAIRN_DIR/aws-credentials"
  cairnw init >/dev/null
}

tool_archive_command() { echo "$CAIRN_EXE --config $CAIRN_CONF wal-push %p"; }

tool_backup() { cairnw --quiet backup >/dev/null; }

tool_backup_incr() { cairnw --quiet backup --type incr >/dev/null; }   # changed blocks since the newest backup

tool_restore() {  # $1 = empty target dir (owned by postgres): stop at consistency and promote
  cairnw --quiet restore --target-dir "$1" --immediate --target-action promote >/dev/null
}

tool_delta_restore() {  # $1 = a data directory of this cluster (bench-delta.sh): rewrite only what differs
  cairnw --quiet restore --delta --target-dir "$1" --immediate --target-action promote >/dev/null
}

tool_repo_bytes() {
  if [ "${REPO:-s3}" = s3 ]; then
    local p=${REPO_PATH#/}
    echo "$(s3_bytes "$p/backups/") $(s3_bytes "$p/wal/")"
  else
    local d=$BENCH_STATE/cairn-repo$REPO_PATH
    echo "$(find "$d/backups" -type f -printf '%s\n' 2>/dev/null | awk '{s+=$1} END{print s+0}') $(find "$d/wal" -type f -printf '%s\n' 2>/dev/null | awk '{s+=$1} END{print s+0}')"
  fi
}

tool_clean() {
  if [ "${REPO:-s3}" = s3 ]; then
    awsl s3 rm --quiet --recursive "s3://$S3_BUCKET${REPO_PATH}/"
  else
    rm -rf "${BENCH_STATE:?}/cairn-repo${REPO_PATH:?}"
  fi
}
