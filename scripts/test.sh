#!/usr/bin/env bash
# test.sh — run all of Cairn's tests against real services: installs what is missing, starts
# PostgreSQL 15 and moto S3 (plain HTTP + TLS, SigV4 enforced) via test-env.sh, builds, runs `swift test`.
# Extra arguments go to `swift test`, e.g. scripts/test.sh --filter BackupTests
# CAIRN_KEEP_SERVICES=1 leaves the services running afterwards (see scripts/test-env.sh status|down).
# Exit code: that of `swift test` (or of the first phase that failed).
set -euo pipefail
cd "$(dirname "$0")/.."
export CAIRN_TEST_STATE=${CAIRN_TEST_STATE:-/tmp/cairn-test}

T0=$SECONDS
phase() { # name cmd... — run one phase, print its elapsed time
  local name=$1 t=$SECONDS rc=0; shift
  echo "=== $name"
  "$@" || rc=$?
  echo "=== $name: $((SECONDS - t))s$([ $rc = 0 ] || echo ", FAILED (exit $rc)")"
  return $rc
}

phase "install dependencies" bash scripts/install-deps.sh
if [ "${CAIRN_KEEP_SERVICES:-0}" = 1 ]; then
  echo "CAIRN_KEEP_SERVICES=1: services stay up afterwards; stop them with scripts/test-env.sh down"
else
  trap 'phase "stop services" bash scripts/test-env.sh down || true; echo "=== total: $((SECONDS - T0))s"' EXIT
  trap 'exit 130' INT; trap 'exit 143' TERM   # so the EXIT trap also runs on Ctrl-C / kill
fi
phase "start services" bash scripts/test-env.sh up
# shellcheck source=/dev/null
. "$CAIRN_TEST_STATE/env.sh"

phase "swift build --build-tests" swift build --build-tests
rc=0
phase "swift test $*" swift test "$@" || rc=$?
exit $rc
