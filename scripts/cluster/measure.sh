#!/usr/bin/env bash
# Failover figures on the three-node cluster: runs test/cluster/round-trips.test.ts with more
# runs than CI does (alternating stop_app and SIGKILL), appends each run as a JSON line to a
# report, and prints p50/p99 failover times and the counts per scenario.
#
# Usage: scripts/cluster/measure.sh [RUNS] [REPORT]
#   RUNS    runs per scenario and queue type (default 10)
#   REPORT  JSON-lines file to append to (default: a new file under ${TMPDIR:-/tmp})
# Environment: CLUSTER_QUEUE_TYPES (default classic,quorum). The suite's globalSetup starts
# the cluster and stops it afterwards (CLUSTER_KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-10}
REPORT=${2:-$(mktemp "${TMPDIR:-/tmp}/cluster-failover-XXXXXX.jsonl")}
export CLUSTER_RUNS=$RUNS CLUSTER_REPORT=$REPORT CLUSTER_QUEUE_TYPES=${CLUSTER_QUEUE_TYPES:-classic,quorum}
status=0
npx vitest run --project cluster test/cluster/round-trips.test.ts || status=$?
node scripts/cluster/summarize.mjs "$REPORT"
echo "runs: $REPORT" >&2
exit "$status"
