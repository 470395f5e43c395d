#!/usr/bin/env bash
# fault_proxy_selftest.sh — checks scripts/fault_proxy.py against a throwaway moto_server (no auth).
# Starts moto and the proxy on free loopback ports, runs every check, kills both, and exits non-zero
# naming each failed check. Needs python3 with moto, the aws CLI and curl (scripts/install-deps.sh).
# FAULT_PROXY_SELFTEST_BIG=0 skips the 20 MB multipart round trip.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fault-proxy-selftest.XXXXXX")
MOTO_PID= PROXY_PID= FAILED=0

cleanup() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
  [ -n "$MOTO_PID" ] && kill -- "-$MOTO_PID" 2>/dev/null   # moto runs in its own process group (setsid)
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '[selftest] %s\n' "$*"; }
pass() { printf '[selftest] ok    %s\n' "$*"; }
fail() { printf '[selftest] FAIL  %s\n' "$*" >&2; FAILED=$((FAILED + 1)); }
check() { # name cmd...   (pass when cmd succeeds)
  local name=$1; shift
  if "$@" >/dev/null; then pass "$name"; else fail "$name"; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
awsx() { # endpoint args...
  env AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
      AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
      aws --endpoint-url "$1" "${@:2}"
}
# curl PUTs need a non-form Content-Type: werkzeug (moto) swallows form-encoded bodies
OCTET=(-H 'Content-Type: application/octet-stream')
# curl through the proxy: prints "<exit code> <http code> <bytes written>"; body goes to $WORK/out
pcurl() {
  local code rc
  rm -f "$WORK/out"
  code=$(curl -s -o "$WORK/out" -w '%{http_code}' "$@"); rc=$?
  echo "$rc $code $(stat -c %s "$WORK/out" 2>/dev/null || echo 0)"
}
script() { curl -sf -X POST --data-binary "$1" "$PROXY/__fault/script" >/dev/null || fail "script rejected: $1"; }
reset() { curl -sf -X POST "$PROXY/__fault/reset" >/dev/null || fail "reset"; }
expect() { # name actual wanted-regex
  if [[ $2 =~ $3 ]]; then pass "$1 ($2)"; else fail "$1: got '$2', wanted /$3/"; fi
}

# --- services ---------------------------------------------------------------------------------
MOTO_PORT=$(free_port); MOTO=http://127.0.0.1:$MOTO_PORT
TMPDIR=$WORK setsid python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 150); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$MOTO/" 2>/dev/null)" != 000 ] && break; sleep 0.2
done
awsx "$MOTO" s3api create-bucket --bucket bkt >/dev/null || { tail "$WORK/moto.log"; say "moto did not come up"; exit 1; }
# moto applies ACLs to unsigned requests: let anonymous curl read and write the bucket
awsx "$MOTO" s3api put-bucket-policy --bucket bkt --policy '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*"]}]}' || exit 1

python3 "$HERE/fault_proxy.py" --listen 127.0.0.1:0 --upstream "127.0.0.1:$MOTO_PORT" \
  --port-file "$WORK/proxy.port" >"$WORK/proxy.out" 2>"$WORK/proxy.err" &
PROXY_PID=$!
for _ in $(seq 100); do [ -s "$WORK/proxy.port" ] && break; sleep 0.1; done
PROXY_PORT=$(cat "$WORK/proxy.port" 2>/dev/null) || { say "proxy wrote no port file"; cat "$WORK/proxy.err"; exit 1; }
PROXY=http://127.0.0.1:$PROXY_PORT
sleep 0.2
expect "stdout announces the port" "$(head -1 "$WORK/proxy.out")" "^listening on 127\.0\.0\.1:$PROXY_PORT\$"
say "moto on $MOTO_PORT, proxy on $PROXY_PORT"

head -c 1048576 /dev/urandom >"$WORK/1m"
printf 'hello fault proxy\n' >"$WORK/small"

# --- plain traffic ------------------------------------------------------------------------------
check "aws put-object through proxy" awsx "$PROXY" s3api put-object --bucket bkt --key k1 --body "$WORK/1m" --output text
awsx "$PROXY" s3api get-object --bucket bkt --key k1 "$WORK/got" >/dev/null
check "aws get-object through proxy is byte-exact" cmp -s "$WORK/1m" "$WORK/got"
expect "aws head-object through proxy" "$(awsx "$PROXY" s3api head-object --bucket bkt --key k1 --query ContentLength)" '^1048576$'
expect "curl HEAD (no body, full Content-Length)" \
  "$(curl -sI "$PROXY/bkt/k1" | tr -d '\r' | grep -i '^content-length:')" '^[Cc]ontent-[Ll]ength: 1048576$'
out=$(curl -sv -o /dev/null -o /dev/null "$PROXY/bkt/k1" "$PROXY/bkt/k1" 2>&1)
expect "client keep-alive (2 GETs, 1 connection)" "$(grep -ci 're-using existing' <<<"$out")" '^1$'
t0=$(date +%s%N)
r=$(pcurl -X PUT "${OCTET[@]}" -H 'Expect: 100-continue' --data-binary @"$WORK/1m" "$PROXY/bkt/k2")
expect "PUT with Expect: 100-continue" "$r" '^0 200 '
expect "  ...without curl's 1 s expect timeout" "$(( ($(date +%s%N) - t0) / 1000000 < 900 ))" '^1$'
r=$(pcurl -X PUT "${OCTET[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$WORK/small" "$PROXY/bkt/k3")
expect "PUT with a chunked request body" "$r" '^0 200 '
expect "  ...stored intact" "$(curl -s "$PROXY/bkt/k3")" '^hello fault proxy$'
expect "unknown control endpoint -> 404" "$(pcurl "$PROXY/__fault/nope")" '^0 404 '
expect "bad rule -> 400" "$(pcurl -X POST --data-binary '{"action":{"bogus":1}}' "$PROXY/__fault/script")" '^0 400 '

# --- faults -------------------------------------------------------------------------------------
reset
script '[{"match":{"method":"GET","path_regex":"^/bkt/k1$"},"action":{"status":503}}]'
r=$(pcurl "$PROXY/bkt/k1"); expect "scripted 503 once" "$r" '^0 503 '
expect "  ...S3 XML SlowDown body" "$(cat "$WORK/out")" '<Error><Code>SlowDown</Code><Message>'
expect "  ...next request passes" "$(pcurl "$PROXY/bkt/k1")" '^0 200 1048576$'
script '{"match":{"path_regex":"k1$"},"action":{"status":500}}'
out=$(curl -sv -o /dev/null -o /dev/null -w '%{http_code} ' "$PROXY/bkt/k1" "$PROXY/bkt/k1" 2>&1)
expect "status fault keeps the connection alive" "$(grep -ci 're-using existing' <<<"$out") $(grep -o '^[0-9][0-9][0-9] [0-9]*' <<<"$out")" '^1 500 200$'
script '{"match":{"method":"PUT"},"action":{"status":404,"code":"Custom","message":"a<b"}}'
r=$(pcurl -X PUT "${OCTET[@]}" --data-binary @"$WORK/small" "$PROXY/bkt/k4")
expect "status with own code/message (escaped)" "$r $(cat "$WORK/out")" '^0 404 .*<Code>Custom</Code><Message>a&lt;b</Message>'

script '{"match":{"path_regex":"k1"},"action":{"reset_after_bytes":1000}}'
r=$(pcurl "$PROXY/bkt/k1"); expect "reset_after_bytes -> curl 18/56 after 1000 bytes" "$r" '^(18|56) 200 1000$'
script '{"match":{"path_regex":"k1"},"action":{"reset_after_bytes":700000}}'
r=$(pcurl "$PROXY/bkt/k1"); expect "reset_after_bytes 700000 -> all 700000 bytes arrive before the RST" "$r" '^(18|56) 200 700000$'
script '{"match":{"path_regex":"k1"},"action":{"truncate_after_bytes":1000}}'
r=$(pcurl "$PROXY/bkt/k1"); expect "truncate_after_bytes -> curl 18 after 1000 bytes" "$r" '^18 200 1000$'

script '{"match":{"path_regex":"k1"},"action":{"stall_seconds":3}}'
t0=$SECONDS
r=$(pcurl --max-time 1 "$PROXY/bkt/k1"); expect "stall_seconds 3 vs --max-time 1 -> curl 28" "$r" '^28 000 0$'
expect "  ...proxy serves others during a stall" "$(pcurl "$PROXY/bkt/k3")" '^0 200 '
script '{"match":{"path_regex":"k1"},"action":{"stall_after_bytes":500,"stall_seconds":3}}'
r=$(pcurl --max-time 1 "$PROXY/bkt/k1"); expect "stall_after_bytes 500 -> curl 28 after 500 bytes" "$r" '^28 200 500$'
script '{"match":{"path_regex":"k1"},"action":{"stall_after_bytes":500,"stall_seconds":1}}'
r=$(pcurl --max-time 5 "$PROXY/bkt/k1"); expect "stall_after_bytes then FIN -> curl 18" "$r" '^18 200 500$'

script '{"match":{"path_regex":"k3"},"action":{"delay_seconds":1.5}}'
t0=$(date +%s%N); r=$(pcurl "$PROXY/bkt/k3"); ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "delay_seconds 1.5 then forwarded" "$r $ms" '^0 200 [0-9]+ (1[5-9]|[2-4][0-9])[0-9][0-9]$'
script '{"match":{"path_regex":"k3"},"action":{"drop_request":true}}'
expect "drop_request -> curl 52 (empty reply)" "$(pcurl "$PROXY/bkt/k3")" '^52 000 0$'

script '{"match":{"method":"PUT","path_regex":"^/bkt/ack$"},"action":{"forward_then_status":500}}'
r=$(pcurl -X PUT "${OCTET[@]}" --data-binary @"$WORK/small" "$PROXY/bkt/ack")
expect "forward_then_status 500: client sees 500 InternalError" "$r $(cat "$WORK/out")" '^0 500 .*<Code>InternalError</Code>'
expect "  ...but the object was stored" "$(curl -s "$PROXY/bkt/ack")" '^hello fault proxy$'

script '{"match":{"path_regex":"k3"},"skip":1,"times":2,"action":{"status":500}}'
codes=""; for _ in 1 2 3 4; do codes+="$(curl -s -o /dev/null -w '%{http_code}' "$PROXY/bkt/k3") "; done
expect "skip 1 times 2" "$codes" '^200 500 500 200 $'
script '{"match":{"method":"GET","query_regex":"(^|&)list-type=2"},"times":-1,"action":{"status":503}}'
expect "query_regex, times -1 (1st)" "$(pcurl "$PROXY/bkt?list-type=2&prefix=k")" '^0 503 '
expect "query_regex, times -1 (2nd)" "$(pcurl "$PROXY/bkt?list-type=2")" '^0 503 '
expect "query_regex leaves other queries" "$(pcurl "$PROXY/bkt?location")" '^0 200 '
reset

# aws CLI retries a SlowDown by itself; the log shows both attempts
script '{"match":{"method":"GET","path_regex":"^/bkt/k1$"},"action":{"status":503}}'
awsx "$PROXY" s3api get-object --bucket bkt --key k1 "$WORK/got" >/dev/null
check "aws CLI retries a 503 and gets the object" cmp -s "$WORK/1m" "$WORK/got"
expect "  ...log shows 503 then 200" "$(curl -s "$PROXY/__fault/log" | python3 -c '
import json, sys; print(" ".join(str(e["status_sent"]) for e in json.load(sys.stdin)))')" '^503 200$'

# --- the log ------------------------------------------------------------------------------------
reset
ETAG=$(awsx "$PROXY" s3api head-object --bucket bkt --key k1 --query ETag --output text)
reset
curl -s -o /dev/null -r 100-199 -H "If-Match: $ETAG" "$PROXY/bkt/k1"
script '{"match":{"path_regex":"k1"},"action":{"reset_after_bytes":10}}'
curl -s -o /dev/null "$PROXY/bkt/k1?partNumber=1"
logcheck=$(curl -s "$PROXY/__fault/log" | ETAG=$ETAG python3 -c '
import json, os, sys
log = json.load(sys.stdin)
a, b = log
assert (a["method"], a["path"], a["query"], a["range"], a["if_match"]) == ("GET", "/bkt/k1", "", "bytes=100-199", os.environ["ETAG"]), a
assert (a["status_sent"], a["upstream_status"], a["action"], a["rule"]) == (206, 206, None, None), a
assert (b["query"], b["range"], b["action"], b["rule"], b["body_bytes_sent"]) == ("partNumber=1", None, {"reset_after_bytes": 10}, 0, 10), b
print("ok")' 2>&1)
expect "log lists requests with range/if_match/action" "$logcheck" '^ok$'
reset
expect "reset clears the log" "$(curl -s "$PROXY/__fault/log")" '^\[\]$'

# --- chunked response from upstream (a tiny chunked server stands in for moto) ----------------
CH_PORT=$(free_port)
python3 - "$CH_PORT" <<'EOF' >/dev/null 2>&1 &
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
        for part in (b"chunk-one,", b"chunk-two", b""):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
CH_PID=$!
python3 "$HERE/fault_proxy.py" --quiet --listen 127.0.0.1:0 --upstream "127.0.0.1:$CH_PORT" --port-file "$WORK/ch.port" >/dev/null &
CHP_PID=$!
for _ in $(seq 100); do [ -s "$WORK/ch.port" ] && break; sleep 0.1; done
sleep 0.3
expect "chunked upstream response relayed" "$(curl -s "http://127.0.0.1:$(cat "$WORK/ch.port")/x" "http://127.0.0.1:$(cat "$WORK/ch.port")/y")" \
  '^chunk-one,chunk-twochunk-one,chunk-two$'
kill "$CHP_PID" "$CH_PID" 2>/dev/null; wait "$CHP_PID" "$CH_PID" 2>/dev/null

# --- 20 MB multipart through the proxy ----------------------------------------------------------
if [ "${FAULT_PROXY_SELFTEST_BIG:-1}" != 0 ]; then
  head -c 20971520 /dev/urandom >"$WORK/20m"
  check "aws s3 cp 20 MB up (multipart)" awsx "$PROXY" s3 cp --only-show-errors "$WORK/20m" s3://bkt/big
  check "aws s3 cp 20 MB down" awsx "$PROXY" s3 cp --only-show-errors s3://bkt/big "$WORK/20m.back"
  check "  ...byte-exact" cmp -s "$WORK/20m" "$WORK/20m.back"
  expect "  ...was multipart" "$(curl -s "$PROXY/__fault/log" | python3 -c '
import json, sys; print(sum("uploadId=" in e["query"] and e["method"] == "PUT" for e in json.load(sys.stdin)))')" '^[2-9]$'
fi

# --- shutdown -----------------------------------------------------------------------------------
kill -TERM "$PROXY_PID"; wait "$PROXY_PID"; rc=$?; PROXY_PID=
expect "proxy exits 0 on SIGTERM" "$rc" '^0$'

if [ "$FAILED" -ne 0 ]; then
  say "last lines of the proxy's stderr:"; tail -n 30 "$WORK/proxy.err" >&2
  say "$FAILED check(s) FAILED"; exit 1
fi
say "all checks passed"
