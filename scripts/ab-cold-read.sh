#!/usr/bin/env bash
# A/B of two brook binaries on reads of data that is not in the page cache:
# per round and side, fill topic `cold` (W1, 1M records of 1 KiB), drop the
# page cache, then run a catch-up consumer of it and, at the same time, the
# W3 latency probe (one record at a time, acked) on another topic. A read
# that page-faults on an async worker stalls the probe's requests queued on
# that worker: the probe's p99 shows it. Rounds alternate the two sides.
#   scripts/ab-cold-read.sh OLD_BROOK NEW_BROOK [ROUNDS]   (default 3; root: drop_caches)
# The bench client is NEW_BROOK's for both sides.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
old=$1 new=$2 rounds=${3:-3}
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq 1 "$rounds"); do
  for side in old new; do
    B=${!side}
    start_broker "$B"
    $new bench --url "$url" --json --topic cold produce --messages 1000000 --size 1024 >/dev/null 2>&1
    $new bench --url "$url" --json --topic probe --partitions 1 produce --messages 100 --sync >/dev/null 2>&1
    sync; echo 3 > /proc/sys/vm/drop_caches
    $new bench --url "$url" --json --topic cold consume --messages 1000000 2>/dev/null | tail -1 >"$data.consume" &
    cpid=$!
    probe=$($new bench --url "$url" --json --topic probe produce --messages 3000 --sync 2>/dev/null | tail -1)
    wait "$cpid"
    echo "$round $side consume $(cat "$data.consume")" | tee -a "$out"
    echo "$round $side probe $probe" | tee -a "$out"
    rm -f "$data.consume"
    stop_broker
  done
done
for side in old new; do
  echo "$side: consume $(grep " $side consume " "$out" | field msgs_per_s | median) msgs/s;" \
    "probe p50 $(grep " $side probe " "$out" | field p50_us | median) us," \
    "p99 $(grep " $side probe " "$out" | field p99_us | median) us," \
    "p999 $(grep " $side probe " "$out" | field p999_us | median) us"
done
