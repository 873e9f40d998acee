#!/usr/bin/env bash
# The web console's cost to the data path (issue #19; docs/benchmarks.md,
# "Web console"), in one run, each round on fresh brokers and data
# directories holding the same state: topic `orders` (64 partitions,
# 64,000 records) read by GROUPS consumer groups, each with commits on
# every partition. Then the W1 produce scenario:
#   off   with --console false (no history, no API): the baseline;
#   on    with the console's history sampled every second (10 times the
#         default) while a poller asks what an open group page asks every
#         second (overview, the groups list with every group's lag, one
#         group and its history).
# Also the latency of those API calls (curl, 20 of each, median ms) on the
# `on` broker. Prints every run, then medians and the on/off ratio.
#   scripts/bench-console.sh [ROUNDS] [GROUPS]   (default 3 rounds, 50 groups)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
rounds=${1:-3}
groups=${2:-50}
cargo build --release -q -p brook --bin brook
B=target/release/brook
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
pid=
poller=
trap 'rm -f "$out"; [ -n "$poller" ] && kill "$poller" 2>/dev/null; if [ -n "$pid" ]; then stop_broker; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

maddr() { grep -o 'metrics=[^ ]*' "$data.addr" | cut -d= -f2; }

# The state both brokers hold: orders and its groups' commits.
fill() {
  $B topic create orders --url "$url" --partitions 64 >/dev/null
  $B bench produce --url "$url" --broker-pid "$pid" --topic orders --messages 64000 \
    --size 256 --json >/dev/null 2>&1
  for g in $(seq 1 "$groups"); do
    $B consume orders --url "$url" --group "g$g" --from earliest --max 640 >/dev/null 2>&1
  done
}

# What an open group page asks every second.
page_requests() {
  local h=$1
  curl -sf "http://$h/api/v1/overview" >/dev/null
  curl -sf "http://$h/api/v1/groups" >/dev/null
  curl -sf "http://$h/api/v1/groups/g1" >/dev/null
  curl -sf "http://$h/api/v1/groups/g1/history" >/dev/null
}

w1() { $B bench --url "$url" --broker-pid "$pid" --json --topic w1 --scenario w1 2>/dev/null | tail -1; }

# Median milliseconds of 20 GETs of $2 on $1.
latency() {
  for _ in $(seq 20); do curl -sf -o /dev/null -w '%{time_total}\n' "http://$1$2"; done |
    awk '{ printf "%.2f\n", $1 * 1000 }' | median
}

for round in $(seq 1 "$rounds"); do
  warm_page_cache "$dir"
  start_broker "$B" --console false
  fill
  echo "$round off $(w1)" | tee -a "$out"
  stop_broker
  pid=

  start_broker "$B" --console-history-interval-ms 1000
  fill
  h=$(maddr)
  ( while true; do page_requests "$h"; sleep 1; done ) &
  poller=$!
  echo "$round on $(w1)" | tee -a "$out"
  kill "$poller"; wait "$poller" 2>/dev/null || true
  poller=
  for path in /api/v1/overview /api/v1/groups /api/v1/groups/g1 /api/v1/groups/g1/history /api/v1/topics; do
    echo "$round latency $path {\"ms\":$(latency "$h" "$path")}" | tee -a "$out"
  done
  stop_broker
  pid=
done

med() { { grep " $1 " "$out" || true; } | { field "$2" || true; } | median; }
off=$(med off msgs_per_s)
on=$(med on msgs_per_s)
echo
echo "medians of $rounds rounds, $groups groups on 64 partitions ($(nproc) CPUs)"
echo "  W1 records/s, console off: $off"
echo "  W1 records/s, console on (history every 1 s, a page polling): $on"
echo "  on/off: $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2f", a / b }')"
for path in /api/v1/overview /api/v1/groups /api/v1/groups/g1 /api/v1/groups/g1/history /api/v1/topics; do
  echo "  GET $path: $(med "$path" ms) ms"
done
