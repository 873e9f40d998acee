#!/usr/bin/env bash
# Routing rules inside the broker (issue #17; docs/benchmarks.md), in one
# run: `brook bench rules` with 1, 10 and 100 rules, each on a fresh broker
# and data directory. It publishes N JSON events of 1 KiB (10,000 keys, 4
# partitions), reads them back once with a plain consumer (the baseline,
# same run), then creates the rules from the earliest record, each
# selecting one event type so that every event is written once, and times
# until every rule's lag is 0. Prints every run as JSON, then medians:
# source events routed per second and the ratio to the plain read.
#   scripts/bench-rules.sh [ROUNDS] [EVENTS]   (default 3 rounds of 500,000)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
rounds=${1:-3}
events=${2:-500000}
cargo build --release -q -p brook
B=target/release/brook
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
pid=
trap 'rm -f "$out"; if [ -n "$pid" ]; then stop_broker; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for round in $(seq 1 "$rounds"); do
  warm_page_cache "$dir"
  for n in 1 10 100; do
    start_broker "$B"
    line=$($B bench --url "$url" --broker-pid "$pid" --json --topic "rules-$n" --partitions 4 \
      rules --rules "$n" --messages "$events" 2>/dev/null | tail -1)
    echo "$round rules-$n $line" | tee -a "$out"
    stop_broker
    pid=
  done
done

med() { { grep " $1 " "$out" || true; } | { field "$2" || true; } | median; }
echo
echo "medians of $rounds rounds, $events JSON events of 1 KiB, 4 partitions ($(nproc) CPUs)"
printf '  %-6s %16s %22s %8s %14s\n' rules "routed events/s" "plain consumer rec/s" ratio "peak RSS KiB"
for n in 1 10 100; do
  r=$(med "rules-$n" msgs_per_s)
  c=$(med "rules-$n" baseline_records_per_s)
  printf '  %-6s %16s %22s %8s %14s\n' "$n" "$r" "$c" \
    "$(awk -v a="$r" -v b="$c" 'BEGIN { if (b == "" || b == 0) print "-"; else printf "%.2f", a / b }')" \
    "$(med "rules-$n" broker_peak_rss_kib)"
done
