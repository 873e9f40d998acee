#!/usr/bin/env bash
# A/B of two brook binaries on W1 (produce) and W2 (consume), rounds
# alternating so that both see the same machine state; prints each run and
# the medians. Used to price the read path's CRC checks (docs/benchmarks.md).
#   scripts/ab-read-path.sh OLD_BROOK NEW_BROOK [ROUNDS]   (default 5)
# Build the old one from a worktree: git worktree add /tmp/base <rev> &&
#   (cd /tmp/base && cargo build --release -p brook)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
old=$1 new=$2 rounds=${3:-5}
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq 1 "$rounds"); do
  for side in old new; do
    B=${!side}
    start_broker "$B"
    w1=$($B bench --url "$url" --json --topic ab produce --messages 1000000 --in-flight 1 2>/dev/null | tail -1)
    w2=$($B bench --url "$url" --json --topic ab consume --messages 1000000 2>/dev/null | tail -1)
    echo "$round $side W1 $w1" | tee -a "$out"
    echo "$round $side W2 $w2" | tee -a "$out"
    stop_broker
  done
done
for w in W1 W2; do
  o=$(grep " old $w " "$out" | grep -o '"msgs_per_s":[0-9.]*' | cut -d: -f2 | median)
  n=$(grep " new $w " "$out" | grep -o '"msgs_per_s":[0-9.]*' | cut -d: -f2 | median)
  echo "$w median msgs/s: old $o, new $n, new/old $(awk "BEGIN {printf \"%.3f\", $n / $o}")"
done
