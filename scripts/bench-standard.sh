#!/usr/bin/env bash
# The standard scenarios (issue #13; docs/benchmarks.md) side by side with a
# peer, in one run: Brook through its public client API (`brook bench
# --scenario ...`) and Redis Streams through its own client
# (peers/redis, scripts/redis-peer.sh), the same workloads, each on a fresh
# server and data directory per round, plus this machine's baselines measured
# in the same round. Prints every run as JSON, then medians and ratios.
#   scripts/bench-standard.sh [ROUNDS]   (default 3; ~4 min per round)
# Needs redis-server (apt-get install redis-server); BROOK_BENCH_NO_PEER=1
# runs Brook alone. Data goes under $BROOK_BENCH_DIR (default: the temp
# dir). Before each round it writes and deletes a 2 GiB file there: on the
# VMs this was measured on, memory the guest freed a while ago is handed back
# to the host and costs a hypervisor fault per page when the page cache next
# takes it, which made whichever run came first 2-3x slower.
# BROOK_BENCH_COLD=1 skips that. Brook and Redis swap places every round, so
# that neither always runs on a machine the other has just warmed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/redis-peer.sh"
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build --release -q -p brook
B=target/release/brook
peer=
if [ -z "${BROOK_BENCH_NO_PEER:-}" ]; then
  cargo build --release -q --manifest-path peers/redis/Cargo.toml
  peer=peers/redis/target/release/redis-peer-bench
fi
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
redis_dir=
trap 'rm -f "$out" "$dir/brook-bench-baseline"; if [ -n "${redis_pid:-}" ]; then stop_redis; fi; if [ -n "$redis_dir" ]; then rm -rf "$redis_dir"; fi' EXIT

# This round's baselines: 1 GiB written into the page cache, then the same
# with one fdatasync at the end (dd's MB/s, 10^6 bytes), and a 1 KiB
# append + fdatasync's latency (what a durable ack waits for at least).
baselines() {
  local buffered synced
  buffered=$(dd if=/dev/zero of="$dir/brook-bench-baseline" bs=1M count=1024 2>&1 | grep -o '[0-9.]* [MG]B/s' | tail -1)
  synced=$(dd if=/dev/zero of="$dir/brook-bench-baseline" bs=1M count=1024 conv=fdatasync 2>&1 | grep -o '[0-9.]* [MG]B/s' | tail -1)
  rm -f "$dir/brook-bench-baseline"
  echo "$round baseline {\"buffered_write\":\"$buffered\",\"write_fdatasync\":\"$synced\"}" | tee -a "$out"
  echo "$round fsync-latency $(python3 scripts/fsync-latency.py "$dir" 2>&1 | grep -m1 fallocate || true)" | tee -a "$out"
}

brook_round() {
  start_broker "$B"
  run() {
    local name=$1 line
    shift
    line=$($B bench --url "$url" --broker-pid "$pid" --json "$@" 2>/dev/null | tail -1)
    echo "$round $name $line" | tee -a "$out"
  }
  run brook-w1         --topic w1  --scenario w1
  run brook-w2         --topic w1  --scenario w2
  run brook-w2-group   --topic w1  --scenario w2-group
  run brook-w2-group-async --topic w1 --scenario w2-group-async
  run brook-w1-durable --topic w1d --scenario w1-durable
  run brook-w3         --topic w3  --scenario w3
  run brook-w3-durable --topic w3d --scenario w3-durable
  stop_broker
}

for round in $(seq 1 "$rounds"); do
  warm_page_cache "$dir"
  baselines
  if [ $((round % 2)) = 1 ]; then
    brook_round
    [ -z "$peer" ] || redis_round "$peer" "$dir" "$out" "$round"
  else
    [ -z "$peer" ] || redis_round "$peer" "$dir" "$out" "$round"
    brook_round
  fi
done

# The median of field $2 over the runs named $1 (empty when there are none).
med() { { grep " $1 " "$out" || true; } | { field "$2" || true; } | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
echo "medians of $rounds rounds ($(nproc) CPUs; redis-server $(redis-server --version 2>/dev/null | grep -o 'v=[^ ]*' | cut -d= -f2))"
printf '  %-12s %14s %14s %12s\n' scenario "brook msgs/s" "redis msgs/s" brook/redis
for w in w1 w1-durable w2 w2-group w2-group-async; do
  b=$(med "brook-$w" msgs_per_s)
  r=$(med "redis-$w" msgs_per_s)
  printf '  %-12s %14s %14s %12s\n' "$w" "$b" "${r:--}" "$(ratio "$b" "$r")"
done
printf '  %-12s %20s %20s %12s\n' latency "brook p50/p99/p999" "redis p50/p99/p999" "p99 ratio"
for w in w3 w3-durable; do
  b="$(med "brook-$w" p50_us)/$(med "brook-$w" p99_us)/$(med "brook-$w" p999_us)"
  r="$(med "redis-$w" p50_us)/$(med "redis-$w" p99_us)/$(med "redis-$w" p999_us)"
  printf '  %-12s %20s %20s %12s\n' "$w µs" "$b" "$r" "$(ratio "$(med "brook-$w" p99_us)" "$(med "redis-$w" p99_us)")"
done
echo "  w2-group commit round trip (brook, µs): p50 $(med brook-w2-group p50_us), p99 $(med brook-w2-group p99_us)"
echo "  brook peak RSS (max over runs): $(grep ' brook-' "$out" | field broker_peak_rss_kib | sort -n | tail -1) KiB; redis: $(field redis_peak_rss_kib <"$out" | sort -n | tail -1) KiB"
echo "  baselines per round: $(grep ' baseline ' "$out" | cut -d' ' -f3- | tr '\n' ' ')"
echo "  fsync latency per round: $(grep ' fsync-latency ' "$out" | cut -d' ' -f3- | tr '\n' ';')"
