#!/usr/bin/env bash
# Log compaction (issue #18; docs/benchmarks.md, "Log compaction"), in one
# run, each round on a fresh broker and data directory:
#   clean   MESSAGES records of 1 KiB over 10,000 keys (`brook bench
#           produce`) into a one-partition topic that does not compact yet,
#           then `topic alter --set cleanup_policy=compact`: the cleaner's
#           one pass over the whole dirty log, unthrottled. Reported: dirty
#           MiB cleaned per second of the pass (its reads are the dirty log
#           twice: the offset map, then the rewrite), beside `dd
#           conv=fdatasync` writing as many bytes in the same directory.
#   w1      the W1 produce scenario on a broker holding that dirty log:
#           not compacted ("alone"), and while its pass runs (unthrottled,
#           and at --cleaner-io-bytes-per-sec 64 MiB/s), with how long the
#           pass took (an unthrottled one may end before W1 does).
# Prints every run, then medians and ratios.
#   scripts/bench-compaction.sh [ROUNDS] [MESSAGES]   (default 3 rounds, 500,000 records)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
rounds=${1:-3}
messages=${2:-500000}
cargo build --release -q -p brook --bin brook
B=target/release/brook
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
pid=
trap 'rm -f "$out" "$dir/brook-bench-dd"; if [ -n "$pid" ]; then stop_broker; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

metric() { curl -s "http://$maddr/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
metrics_addr() { grep -o 'metrics=[^ ]*' "$data.addr" | cut -d= -f2; }

# Fills topic "state" (not compacted yet) with the dirty log.
fill() {
  $B topic create state --url "$url" --partitions 1 --retention-ms -1 >/dev/null
  $B topic alter state --url "$url" --set segment_bytes=67108864 >/dev/null
  $B bench produce --url "$url" --broker-pid "$pid" --topic state --messages "$messages" \
    --size 1024 --keys 10000 --json >/dev/null 2>&1
}

# Turns compaction on: the cleaner takes the partition within its backoff.
compact() {
  $B topic alter state --url "$url" --set cleanup_policy=compact \
    --set min_cleanable_dirty_ratio=0.01 >/dev/null
}

# Waits until the cleaner finished its first pass over "state".
wait_pass() {
  for _ in $(seq 6000); do
    [ "$(metric brook_cleaner_passes_total)" = "1" ] && return 0
    sleep 0.05
  done
  echo "the cleaning pass did not finish" >&2
  exit 1
}

w1() { $B bench --url "$url" --broker-pid "$pid" --json --topic w1 --scenario w1 2>/dev/null | tail -1; }

for round in $(seq 1 "$rounds"); do
  warm_page_cache "$dir"
  # The pass alone, unthrottled.
  start_broker "$B" --cleaner-backoff-ms 100
  maddr=$(metrics_addr)
  fill
  size=$($B topic describe state --url "$url" --json | grep -o '"size_bytes":[0-9]*' | cut -d: -f2)
  compact
  wait_pass
  read=$(metric brook_cleaner_read_bytes_total)
  written=$(metric brook_cleaner_written_bytes_total)
  busy=$(metric brook_cleaner_busy_seconds_total)
  after=$($B topic describe state --url "$url" --json | grep -o '"size_bytes":[0-9]*' | cut -d: -f2)
  stop_broker
  pid=
  dirty=$(awk -v r="$read" 'BEGIN { printf "%d", r / 2 }')
  start=$(date +%s.%N)
  dd if=/dev/zero of="$dir/brook-bench-dd" bs=1M count=$((dirty / 1048576)) conv=fdatasync status=none
  dd_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  rm -f "$dir/brook-bench-dd"
  echo "$round clean {\"log_bytes\":$size,\"dirty_bytes\":$dirty,\"after_bytes\":$after,\"written_bytes\":$written,\"pass_s\":$busy,\"clean_mib_s\":$(awk -v d="$dirty" -v s="$busy" 'BEGIN { printf "%.1f", d / s / 1048576 }'),\"dd_mib_s\":$(awk -v d="$dirty" -v s="$dd_s" 'BEGIN { printf "%.1f", d / s / 1048576 }')}" | tee -a "$out"

  # W1 alone, then beside a pass (unthrottled, then at 64 MiB/s).
  for mode in alone unthrottled throttled; do
    flags=(--cleaner-backoff-ms 100)
    [ "$mode" = throttled ] && flags+=(--cleaner-io-bytes-per-sec 67108864)
    start_broker "$B" "${flags[@]}"
    maddr=$(metrics_addr)
    fill
    [ "$mode" = alone ] || compact
    line=$(w1)
    [ "$mode" = alone ] || wait_pass
    echo "$round w1-$mode {\"pass_s\":$(metric brook_cleaner_busy_seconds_total),${line#\{}" | tee -a "$out"
    stop_broker
    pid=
  done
done

med() { { grep " $1 " "$out" || true; } | { field "$2" || true; } | median; }
echo
echo "medians of $rounds rounds ($(nproc) CPUs); dirty log: $messages records of 1 KiB over 10,000 keys"
c=$(med clean clean_mib_s)
d=$(med clean dd_mib_s)
printf '  cleaning %s MiB/s of dirty log, dd conv=fdatasync %s MiB/s: ratio %s\n' "$c" "$d" \
  "$(awk -v a="$c" -v b="$d" 'BEGIN { printf "%.2f", a / b }')"
printf '  log %s bytes -> %s after the pass\n' "$(med clean log_bytes)" "$(med clean after_bytes)"
a=$(med w1-alone msgs_per_s)
for m in unthrottled throttled; do
  v=$(med "w1-$m" msgs_per_s)
  printf '  w1 while cleaning (%s, pass %s s, w1 %s s): %s msgs/s vs %s alone: %s; p99 %s vs %s µs\n' "$m" \
    "$(med "w1-$m" pass_s)" "$(med "w1-$m" seconds)" "$v" "$a" \
    "$(awk -v a="$a" -v b="$v" 'BEGIN { printf "%.2f", b / a }')" "$(med "w1-$m" p99_us)" "$(med w1-alone p99_us)"
done
