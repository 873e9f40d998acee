#!/usr/bin/env bash
# The standard scenarios over gRPC and over Kafka's protocol, against the
# same broker, in one run (issue #15's target: Kafka at least 90% of gRPC):
#   - `brook bench --scenario S` (Brook's client, the gRPC listener), and
#   - `brook bench --scenario S --protocol kafka` (the Kafka listener, with a
#     client as lean as Brook's own: kafka-protocol's messages, the same
#     batch code), for w1, w1-durable and w2;
#   - for reference, third-party Kafka clients: librdkafka (peers/rdkafka,
#     the C client behind confluent-kafka and kcat; built with cmake) for w1,
#     w1-durable and w2, and rskafka (peers/kafka), whose produce is always
#     acks=-1 (so it is set beside w1-durable).
# Every run also reports the broker's CPU seconds (utime + stime from
# /proc/PID/stat around it): what each protocol costs the broker, apart
# from how fast the client is.
# A fresh broker and data directory per round. Prints every run as JSON,
# then medians and the kafka/grpc ratios.
#   scripts/bench-kafka.sh [ROUNDS]   (default 3; BROOK_BENCH_RSKAFKA=0 skips
#   rskafka, BROOK_BENCH_RDKAFKA=0 librdkafka)
# Each w2 reads back its own side's w1-durable topic. The side that goes
# first alternates every round, so that neither always runs on a broker the
# other has just warmed. Data goes under $BROOK_BENCH_DIR (default: the temp
# dir); before each round it writes and deletes a 2 GiB file there (lib.sh's
# warm_page_cache; BROOK_BENCH_COLD=1 skips that).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
rounds=${1:-3}
rskafka=${BROOK_BENCH_RSKAFKA:-1}
rdkafka=${BROOK_BENCH_RDKAFKA:-1}
cargo build --release -q -p brook
[ "$rskafka" = 0 ] || cargo build --release -q --manifest-path peers/kafka/Cargo.toml
if [ "$rdkafka" != 0 ]; then
  # librdkafka's sources build with cmake and need libcurl's headers.
  if ! command -v cmake >/dev/null 2>&1 || ! { [ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ]; }; then
    apt-get update -qq && apt-get install -y -qq cmake libcurl4-openssl-dev
  fi
  cargo build --release -q --manifest-path peers/rdkafka/Cargo.toml
fi
B=target/release/brook
K=peers/kafka/target/release/kafka-peer-bench
R=peers/rdkafka/target/release/rdkafka-peer-bench
ticks=$(getconf CLK_TCK)
# The broker's CPU seconds so far (user + system).
cpu() { awk -v t="$ticks" '{printf "%.3f", ($14 + $15) / t}' "/proc/$pid/stat"; }
# Appends ,"broker_cpu_s":X to the JSON line $2, X the CPU since $1.
with_cpu() { local now; now=$(cpu); echo "${2%\}},\"broker_cpu_s\":$(awk -v a="$1" -v b="$now" 'BEGIN {printf "%.3f", b - a}')}"; }
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
trap 'rm -f "$out"; if [ -n "${pid:-}" ]; then stop_broker; fi' EXIT

# One run, appended to $out as "ROUND NAME JSON".
grpc() {
  local name=$1 line at
  shift
  at=$(cpu)
  line=$($B bench --url "$url" --broker-pid "$pid" --json "$@" 2>/dev/null | tail -1)
  echo "$round grpc-$name $(with_cpu "$at" "$line")" | tee -a "$out"
}
kafka() {
  local name=$1 line at
  shift
  at=$(cpu)
  line=$($B bench --url "$url" --broker-pid "$pid" --json --protocol kafka --kafka-bootstrap "$kafka_addr" "$@" 2>/dev/null | tail -1)
  echo "$round kafka-$name $(with_cpu "$at" "$line")" | tee -a "$out"
}
rskafka() {
  [ "$rskafka" = 0 ] && return 0
  local name=$1 line at
  shift
  at=$(cpu)
  line=$($K --bootstrap "$kafka_addr" --broker-pid "$pid" --json "$@" | tail -1)
  echo "$round rskafka-$name $(with_cpu "$at" "$line")" | tee -a "$out"
}
rdkafka() {
  [ "$rdkafka" = 0 ] && return 0
  local name=$1 topic=$2 line at
  shift 2
  # The topic first (librdkafka does not create it): 8 partitions, as the others'.
  [ "$name" = w2 ] || $B topic create "$topic" --partitions 8 --url "$url" >/dev/null
  at=$(cpu)
  line=$($R --bootstrap "$kafka_addr" --topic "$topic" --json "$@" | tail -1)
  echo "$round rdkafka-$name $(with_cpu "$at" "$line")" | tee -a "$out"
}

for round in $(seq 1 "$rounds"); do
  warm_page_cache "$dir"
  start_broker "$B"
  kafka_addr=$(grep -o 'kafka=[^ ]*' "$data.addr" | cut -d= -f2)
  if [ -z "$kafka_addr" ]; then
    echo "the broker names no Kafka listener: $(cat "$data.addr")" >&2
    exit 1
  fi
  if [ $((round % 2)) = 1 ]; then
    grpc w1 --topic g1 --scenario w1
    kafka w1 --topic k1 --scenario w1
    grpc w1-durable --topic g1d --scenario w1-durable
    kafka w1-durable --topic k1d --scenario w1-durable
    grpc w2 --topic g1d --scenario w2
    kafka w2 --topic k1d --scenario w2
  else
    kafka w1 --topic k1 --scenario w1
    grpc w1 --topic g1 --scenario w1
    kafka w1-durable --topic k1d --scenario w1-durable
    grpc w1-durable --topic g1d --scenario w1-durable
    kafka w2 --topic k1d --scenario w2
    grpc w2 --topic g1d --scenario w2
  fi
  rskafka w1-durable --topic r1d --scenario w1 --acks durable
  rskafka w2 --topic r1d --scenario w2
  rdkafka w1 d1 --scenario w1
  rdkafka w1-durable d1d --scenario w1-durable
  rdkafka w2 d1d --scenario w2
  stop_broker
  pid=
done

# The median of field $2 over the runs named $1 (empty when there are none).
med() { { grep " $1 " "$out" || true; } | { field "$2" || true; } | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
echo "medians of $rounds rounds ($(nproc) CPUs)"
printf '  %-12s %12s %12s %10s %12s %12s %12s %12s\n' scenario "grpc msg/s" "kafka msg/s" kafka/grpc "rdkafka" rdkafka/grpc "rskafka" rskafka/grpc
for w in w1 w1-durable w2; do
  g=$(med "grpc-$w" msgs_per_s)
  k=$(med "kafka-$w" msgs_per_s)
  d=$(med "rdkafka-$w" msgs_per_s)
  r=$(med "rskafka-$w" msgs_per_s)
  printf '  %-12s %12s %12s %10s %12s %12s %12s %12s\n' "$w" "${g:--}" "${k:--}" "$(ratio "$k" "$g")" "${d:--}" "$(ratio "$d" "$g")" "${r:--}" "$(ratio "$r" "$g")"
done
echo "  broker CPU seconds per run, medians:"
printf '  %-12s %12s %12s %12s %12s\n' scenario grpc kafka rdkafka rskafka
for w in w1 w1-durable w2; do
  printf '  %-12s %12s %12s %12s %12s\n' "$w" "$(med "grpc-$w" broker_cpu_s)" "$(med "kafka-$w" broker_cpu_s)" "$(med "rdkafka-$w" broker_cpu_s)" "$(med "rskafka-$w" broker_cpu_s)"
done
# Latency of a w1 round (8,000 records sent and all acknowledged).
printf '  %-12s %20s %20s %12s\n' "round µs" "grpc p50/p99/p999" "kafka p50/p99/p999" "p99 ratio"
for w in w1 w1-durable; do
  g="$(med "grpc-$w" p50_us)/$(med "grpc-$w" p99_us)/$(med "grpc-$w" p999_us)"
  k="$(med "kafka-$w" p50_us)/$(med "kafka-$w" p99_us)/$(med "kafka-$w" p999_us)"
  printf '  %-12s %20s %20s %12s\n' "$w" "$g" "$k" "$(ratio "$(med "kafka-$w" p99_us)" "$(med "grpc-$w" p99_us)")"
done
echo "  broker peak RSS (max over runs): $(field broker_peak_rss_kib <"$out" | sort -n | tail -1) KiB"
