#!/usr/bin/env bash
# Queue groups beside RabbitMQ (issue #14; docs/benchmarks.md), in one run:
# `brook bench queue` (publish N records of 1 KiB, then C competing
# consumers fetch 500 at a time and ack every record, acks batched by the
# client) and the same workload on a RabbitMQ quorum queue with manual acks
# and publisher confirms (peers/rabbitmq, scripts/rabbitmq-peer.sh), for
# C = 1, 4 and 16, each on a fresh server and data directory. Prints every
# run as JSON, then medians and ratios.
#   scripts/bench-queue.sh [ROUNDS] [RECORDS]   (default 3 rounds of 200,000)
# Needs rabbitmq-server (apt-get install rabbitmq-server);
# BROOK_BENCH_NO_PEER=1 runs Brook alone. Brook and RabbitMQ swap places
# every round. The topic has 4 partitions: 16 consumers are 4 per partition.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rabbitmq-peer.sh"
cd "$(dirname "$0")/.."
rounds=${1:-3}
records=${2:-200000}
cargo build --release -q -p brook
B=target/release/brook
peer=
if [ -z "${BROOK_BENCH_NO_PEER:-}" ]; then
  cargo build --release -q --manifest-path peers/rabbitmq/Cargo.toml
  peer=peers/rabbitmq/target/release/rabbitmq-peer-bench
fi
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
rabbitmq_dir=
pid=
trap 'rm -f "$out"; if [ -n "$pid" ]; then stop_broker; fi; if [ -n "${rabbitmq_pid:-}" ]; then stop_rabbitmq; fi; if [ -n "$rabbitmq_dir" ]; then rm -rf "$rabbitmq_dir"; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

brook_round() {
  local c line
  for c in 1 4 16; do
    start_broker "$B"
    line=$($B bench --url "$url" --broker-pid "$pid" --json --topic queue --partitions 4 \
      queue --consumers "$c" --messages "$records" 2>/dev/null | tail -1)
    echo "$round brook-queue-c$c $line" | tee -a "$out"
    stop_broker
    pid=
  done
}

peer_round() {
  [ -z "$peer" ] || RECORDS=$records rabbitmq_round "$peer" "$dir" "$out" "$round"
}

for round in $(seq 1 "$rounds"); do
  warm_page_cache "$dir"
  if [ $((round % 2)) = 1 ]; then
    brook_round
    peer_round
  else
    peer_round
    brook_round
  fi
done

med() { { grep " $1 " "$out" || true; } | { field "$2" || true; } | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
echo "medians of $rounds rounds, $records records of 1 KiB ($(nproc) CPUs; rabbitmq-server $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo -), quorum queue)"
printf '  %-10s %14s %14s %8s %22s %22s\n' consumers "brook acked/s" "rabbit acked/s" ratio "brook p50/p99 µs" "rabbit p50/p99 µs"
for c in 1 4 16; do
  b=$(med "brook-queue-c$c" msgs_per_s)
  r=$(med "rabbitmq-queue-c$c" acked_per_s)
  printf '  %-10s %14s %14s %8s %22s %22s\n' "$c" "$b" "${r:--}" "$(ratio "$b" "$r")" \
    "$(med "brook-queue-c$c" p50_us)/$(med "brook-queue-c$c" p99_us)" \
    "$(med "rabbitmq-queue-c$c" p50_us)/$(med "rabbitmq-queue-c$c" p99_us)"
done
echo "  peak RSS (max over runs): brook $(grep ' brook-' "$out" | field broker_peak_rss_kib | sort -n | tail -1) KiB; rabbitmq $(grep ' rabbitmq-' "$out" | field server_peak_rss_kib | sort -n | tail -1) KiB"
