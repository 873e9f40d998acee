#!/usr/bin/env bash
# The peer for Brook's standard runs: the same workloads (W1, W2, W2 with a
# consumer group committing every 1,000, W3) against Redis Streams on a fresh
# redis-server, so that Brook's figures have a peer measured in the same run
# (docs/benchmarks.md). Prints every run as JSON, then the medians.
#   scripts/redis-peer.sh [ROUNDS]   (default 3; needs redis-server and
#                                    redis-cli: apt-get install redis-server)
# Each round: a plain server (no RDB snapshots, no AOF) runs w1, w2,
# w2-group and w3; then a durable one (appendonly, appendfsync always) runs
# w1 and w3. Each server gets a new directory under $BROOK_BENCH_DIR (default
# the temp dir), removed after it stops. Before each round it writes and
# deletes a 2 GiB file there, as bench-standard.sh does (see there why);
# BROOK_BENCH_COLD=1 skips that.
#
# Sourced, it only defines start_redis DIR [durable] (sets $redis_pid,
# $redis_port and $redis_url), stop_redis and redis_round.
set -euo pipefail

# Starts redis-server on a free loopback port with DIR as its working
# directory; with "durable", every write is in the AOF and fsynced before it
# is answered. Returns once it answers PING; fails if it does not in 10 s.
start_redis() {
  local dir=$1 durable=${2:-}
  local persistence=()
  if [ "$durable" = durable ]; then
    persistence=(--appendonly yes --appendfsync always)
  elif [ -n "$durable" ]; then
    echo "start_redis: unknown mode '$durable' (expected 'durable')" >&2
    return 1
  fi
  redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" --save '' \
    --daemonize no "${persistence[@]}" >"$dir/redis.log" 2>&1 &
  redis_pid=$!
  redis_url="redis://127.0.0.1:$redis_port"
  local deadline=$((SECONDS + 10))
  until [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; do
    if ! kill -0 "$redis_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "redis-server did not start; its log:" >&2
      cat "$dir/redis.log" >&2
      stop_redis
      return 1
    fi
    sleep 0.05
  done
}

# Stops the server start_redis started and waits for it to exit.
stop_redis() {
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
}

# The redis-server's peak resident set in KiB.
redis_peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$redis_pid/status"; }

# One round of the peer: a plain server runs w1, w2, w2-group and w3, then a
# durable one runs w1 and w3 (the redis-peer-bench binary PEER, servers in new
# directories under BASE); every run is appended to OUT as "ROUND NAME JSON".
redis_round() {
  local peer=$1 base=$2 out=$3 round=$4 mode
  prun() {
    local name=$1 line
    shift
    line=$($peer --url "$redis_url" "$@")
    echo "$round $name $line" | tee -a "$out"
  }
  for mode in plain durable; do
    redis_dir=$(mktemp -d "$base/redis-peer.XXXXXX")
    if [ $mode = plain ]; then
      start_redis "$redis_dir"
      prun redis-w1 --scenario w1 --prefix w1
      prun redis-w2 --scenario w2 --prefix w1
      prun redis-w2-group --scenario w2-group --prefix w1
      prun redis-w3 --scenario w3 --prefix w3
    else
      start_redis "$redis_dir" durable
      prun redis-w1-durable --scenario w1 --prefix w1d --label "redis w1 durable"
      prun redis-w3-durable --scenario w3 --prefix w3d --label "redis w3 durable"
    fi
    echo "$round redis-peak-rss-$mode {\"redis_peak_rss_kib\":$(redis_peak_rss_kib)}" >>"$out"
    stop_redis
    redis_pid=
    rm -rf "$redis_dir"
    redis_dir=
  done
}

main() {
  . "$(dirname "$0")/lib.sh"
  cd "$(dirname "$0")/.."
  local rounds=${1:-3}
  cargo build --release -q --manifest-path peers/redis/Cargo.toml
  local B=peers/redis/target/release/redis-peer-bench
  local base=${BROOK_BENCH_DIR:-/tmp}
  out=$(mktemp)
  redis_dir=
  trap 'rm -f "$out"; if [ -n "${redis_pid:-}" ]; then stop_redis; fi; if [ -n "$redis_dir" ]; then rm -rf "$redis_dir"; fi' EXIT
  for round in $(seq 1 "$rounds"); do
    warm_page_cache "$base"
    redis_round "$B" "$base" "$out" "$round"
  done
  echo "medians of $rounds rounds (redis-server $(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2)):"
  local w
  for w in redis-w1 redis-w1-durable redis-w2 redis-w2-group; do
    echo "  $w: $(grep " $w " "$out" | field msgs_per_s | median) msgs/s, $(grep " $w " "$out" | field mib_per_s | median) MiB/s"
  done
  for w in redis-w1 redis-w1-durable; do
    echo "  $w per pipeline of 1,000: p50 $(grep " $w " "$out" | field p50_us | median) us, p99 $(grep " $w " "$out" | field p99_us | median) us"
  done
  for w in redis-w3 redis-w3-durable; do
    echo "  $w: p50 $(grep " $w " "$out" | field p50_us | median) us, p99 $(grep " $w " "$out" | field p99_us | median) us, p999 $(grep " $w " "$out" | field p999_us | median) us, $(grep " $w " "$out" | field msgs_per_s | median) msgs/s"
  done
  echo "  redis peak RSS (max over servers): $(field redis_peak_rss_kib <"$out" | sort -n | tail -1) KiB"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
