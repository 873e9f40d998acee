#!/usr/bin/env bash
# What tracing costs the broker (issue #17; docs/benchmarks.md, "Tracing on
# and off"), in one run, interleaved per round, each on a fresh broker and
# data directory: without tracing ("off"), and exporting spans over OTLP
# to a sink on this machine ("on"; the sink is the tests' collector stub,
# target/release/otlp-sink, which keeps every span it is sent). Workloads:
#   w1            the W1 produce scenario (untraced records)
#   rules         10 routing rules over 1 KiB JSON events (untraced)
#   rules-traced  the same, every event with a traceparent of its own: a
#                 produce span per batch and a route span per routed event
# Prints every run as JSON, then medians and on/off ratios, and the spans
# the sink received per "on" run.
#   scripts/bench-tracing.sh [ROUNDS] [RULE_EVENTS]   (default 3 rounds, 300,000 events)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
rounds=${1:-3}
events=${2:-300000}
cargo build --release -q -p brook -p brook-tests --bin brook --bin otlp-sink
B=target/release/brook
S=target/release/otlp-sink
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
sink_out=$(mktemp)
pid=
sink=
trap 'rm -f "$out" "$sink_out"; if [ -n "$pid" ]; then stop_broker; fi; if [ -n "$sink" ]; then kill "$sink" 2>/dev/null || true; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for round in $(seq 1 "$rounds"); do
  warm_page_cache "$dir"
  for mode in off on; do
    flags=()
    if [ "$mode" = on ]; then
      "$S" >"$sink_out" &
      sink=$!
      for _ in $(seq 100); do grep -q listening "$sink_out" && break; sleep 0.1; done
      flags=(--otlp-endpoint "$(grep -o 'http://[^ ]*' "$sink_out")")
    fi
    start_broker "$B" "${flags[@]}"
    run() {
      local name=$1 line
      shift
      line=$($B bench --url "$url" --broker-pid "$pid" --json "$@" 2>/dev/null | tail -1)
      echo "$round $name-$mode $line" | tee -a "$out"
    }
    run w1 --topic w1 --scenario w1
    run rules --topic rules --partitions 4 rules --rules 10 --messages "$events"
    run rules-traced --topic rules-traced --partitions 4 rules --rules 10 --messages "$events" --traced
    stop_broker
    pid=
    if [ -n "$sink" ]; then
      kill "$sink"; wait "$sink" 2>/dev/null || true
      sink=
      echo "$round sink $(grep spans "$sink_out")" | tee -a "$out"
    fi
  done
done

med() { { grep " $1 " "$out" || true; } | { field "$2" || true; } | median; }
echo
echo "medians of $rounds rounds ($(nproc) CPUs); rules: $events events of 1 KiB, 10 rules, 4 partitions"
printf '  %-14s %14s %14s %8s\n' workload "off msgs/s" "on msgs/s" on/off
for w in w1 rules rules-traced; do
  a=$(med "$w-off" msgs_per_s)
  b=$(med "$w-on" msgs_per_s)
  printf '  %-14s %14s %14s %8s\n' "$w" "$a" "$b" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN { if (a == "" || a == 0) print "-"; else printf "%.2f", b / a }')"
done
