#!/usr/bin/env bash
# crash-campaign.sh — the full crash and fault campaign of issue #11, on demand (CI runs a short share of it).
#   scripts/crash-campaign.sh [extra swift test arguments]
# CAIRN_CRASH_TRIALS trials per operation (default here 30: 180 kill -9 trials of backup (local and S3), wal-push,
# expire, restore and the S3 endpoint, and 93 runs under scripted S3 faults); CAIRN_CRASH_SEED=N replays the
# random choices of a run (each test prints its seed). The counts are printed at the end and appended to
# $CAIRN_TEST_STATE/measurements.txt.
# Uses the test services when they already run (scripts/test-env.sh up, or CAIRN_KEEP_SERVICES=1 scripts/test.sh);
# otherwise goes through scripts/test.sh, which installs, starts and afterwards stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CAIRN_CRASH_TRIALS=${CAIRN_CRASH_TRIALS:-30}
FILTER='CrashCampaign|FaultCampaign'
SERVICES=${CAIRN_TEST_STATE:-/tmp/cairn-test}
if CAIRN_TEST_STATE=$SERVICES bash scripts/test-env.sh status >/dev/null 2>&1; then
  # shellcheck source=/dev/null
  . "$SERVICES/env.sh"
  export CAIRN_TEST_STATE=${CAIRN_CAMPAIGN_STATE:-$CAIRN_TEST_STATE}   # a private state dir (own cairn copy) if set
  mkdir -p "$CAIRN_TEST_STATE"
  MEASURED=$CAIRN_TEST_STATE/measurements.txt; touch "$MEASURED"; FROM=$(($(wc -l <"$MEASURED") + 1))
  rc=0
  swift build --build-tests && swift test --filter "$FILTER" "$@" || rc=$?
else
  MEASURED=$SERVICES/measurements.txt; FROM=1; [ -f "$MEASURED" ] && FROM=$(($(wc -l <"$MEASURED") + 1))
  rc=0
  bash scripts/test.sh --filter "$FILTER" "$@" || rc=$?
fi
echo "=== campaign counts (CAIRN_CRASH_TRIALS=$CAIRN_CRASH_TRIALS)"
[ -f "$MEASURED" ] && tail -n +"$FROM" "$MEASURED" | grep -E '^(crash|fault) campaign' || true
exit $rc
