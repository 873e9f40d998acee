#!/usr/bin/env bash
# Issue #5's standard runs (W1-W3) against a fresh release broker and data
# directory per round; prints every run as JSON, then the medians.
#   scripts/bench-standard.sh [ROUNDS]   (default 3; needs ~1 min per round)
# The data directory is under $BROOK_BENCH_DIR (default: the temp dir).
# Before each round it writes and deletes a 2 GiB file there: on the VMs this
# was measured on, memory the guest freed a while ago is handed back to the
# host and costs a hypervisor fault per page when the page cache next takes
# it, which made whichever round came first 2-3x slower on W1. Set
# BROOK_BENCH_COLD=1 to skip that and measure the cold state.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build --release -q -p brook
B=target/release/brook
out=$(mktemp)
trap 'rm -f "$out"' EXIT
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
for round in $(seq 1 "$rounds"); do
  if [ -z "${BROOK_BENCH_COLD:-}" ]; then
    dd if=/dev/zero of="$dir/brook-bench-warm" bs=1M count=2048 status=none
    rm -f "$dir/brook-bench-warm"
  fi
  start_broker "$B"
  run() {
    local name=$1; shift
    local line
    line=$($B bench --url "$url" --broker-pid "$pid" --json "$@" 2>/dev/null | tail -1)
    echo "$round $name $line" | tee -a "$out"
  }
  run W1-written     --topic w1  produce --messages 1000000 --in-flight 1
  run W2             --topic w1  consume --messages 1000000
  run W1-durable     --topic w1d produce --messages 1000000 --in-flight 1 --acks durable
  run W1-in-flight-5 --topic w1m produce --messages 1000000 --in-flight 5
  run W3-written     --topic w3  produce --messages 20000 --sync
  run W3-durable     --topic w3d produce --messages 20000 --sync --acks durable
  stop_broker
done
echo "medians of $rounds rounds:"
for w in W1-written W1-durable W1-in-flight-5 W2; do
  echo "  $w: $(grep " $w " "$out" | field msgs_per_s | median) msgs/s, $(grep " $w " "$out" | field mib_per_s | median) MiB/s (baselines: write+fdatasync $(grep " $w " "$out" | field baseline_write_mib_per_s | median) MiB/s, buffered write $(grep " $w " "$out" | field baseline_buffered_mib_per_s | median) MiB/s)"
done
for w in W3-written W3-durable; do
  echo "  $w: p50 $(grep " $w " "$out" | field p50_us | median) us, p99 $(grep " $w " "$out" | field p99_us | median) us, p999 $(grep " $w " "$out" | field p999_us | median) us"
done
echo "  broker peak RSS (max over runs): $(field broker_peak_rss_kib <"$out" | sort -n | tail -1) KiB"
