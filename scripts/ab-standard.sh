#!/usr/bin/env bash
# A/B of two brook binaries on the standard runs (W1 written, W2, W1 durable,
# W1 with 5 in flight, W3 written and durable), rounds alternating the two
# sides so that both see the same machine state; prints every run, then the
# medians and the new/old ratios. The bench client is NEW_BROOK's for both,
# or each side's own with AB_CLIENT=own (when the two speak different batch
# formats, as magic 1 and Kafka's v2).
#   [AB_CLIENT=own] scripts/ab-standard.sh OLD_BROOK NEW_BROOK [ROUNDS]   (default 3)
# Build the old one from a worktree: git worktree add /tmp/base <rev> &&
#   (cd /tmp/base && cargo build --release -p brook)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
old=$1 new=$2 rounds=${3:-3}
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq 1 "$rounds"); do
  for side in old new; do
    B=${!side}
    client=$new
    if [[ ${AB_CLIENT:-} == own ]]; then client=$B; fi
    start_broker "$B"
    run() {
      local name=$1; shift
      echo "$round $side $name $($client bench --url "$url" --broker-pid "$pid" --json "$@" 2>/dev/null | tail -1)" | tee -a "$out"
    }
    run W1-written     --topic w1  produce --messages 1000000 --in-flight 1
    run W2             --topic w1  consume --messages 1000000
    run W1-durable     --topic w1d produce --messages 1000000 --in-flight 1 --acks durable
    run W1-in-flight-5 --topic w1m produce --messages 1000000 --in-flight 5
    run W3-written     --topic w3  produce --messages 20000 --sync
    run W3-durable     --topic w3d produce --messages 20000 --sync --acks durable
    stop_broker
  done
done
ratio() { awk "BEGIN {printf \"%.3f\", $2 / $1}"; }
for w in W1-written W2 W1-durable W1-in-flight-5; do
  o=$(grep " old $w " "$out" | field msgs_per_s | median)
  n=$(grep " new $w " "$out" | field msgs_per_s | median)
  echo "$w msgs/s median: old $o, new $n, new/old $(ratio "$o" "$n")"
done
for w in W3-written W3-durable; do
  for q in p50_us p99_us; do
    o=$(grep " old $w " "$out" | field $q | median)
    n=$(grep " new $w " "$out" | field $q | median)
    echo "$w $q median: old $o, new $n, new/old $(ratio "$o" "$n")"
  done
done
