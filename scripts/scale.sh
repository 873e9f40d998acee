#!/usr/bin/env bash
# Issue #9's scale run: N partitions (N/8 topics x 8), one small record each,
# the broker's default settings, under `ulimit -n 20000`. For each N prints
# one line: creation time, the wait for the kernel's write-back to settle
# (idle), idle RSS, open descriptors, disk reserved (du), clean stop time,
# and time to serving after a clean stop and after kill -9.
#   scripts/scale.sh [N ...]        (default: 1000 5000 10000)
#   BROOK=/path/to/brook scripts/scale.sh 10000   (another broker binary)
# The data directories go under $BROOK_SCALE_DIR (default: the temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${*:-1000 5000 10000}
# BROOK=path/to/brook measures another broker binary (e.g. an older build).
if [ -z "${BROOK:-}" ]; then cargo build --release -q -p brook; fi
cargo build --release -q -p brook-client --example many_partitions
B=${BROOK:-target/release/brook}
LOAD=target/release/examples/many_partitions
ulimit -n 20000
base=${BROOK_SCALE_DIR:-${TMPDIR:-/tmp}}

now() { date +%s.%N; }
# Starts the broker over $data; sets pid and url once the listening line
# (printed when it serves) is out; sets ready_s to the seconds that took.
start() {
  local t0 out
  t0=$(now)
  out=$(mktemp)
  BROOK_KAFKA_LISTEN=127.0.0.1:0 $B serve --data-dir "$data" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 >"$out" 2>>"$data.log" &
  pid=$!
  for _ in $(seq 6000); do grep -q listening "$out" 2>/dev/null && break; sleep 0.01; done
  grep -q listening "$out" || { echo "broker did not start; see $data.log" >&2; exit 1; }
  ready_s=$(awk "BEGIN {print $(now) - $t0}")
  url="http://$(grep -o 'grpc=[^ ]*' "$out" | cut -d= -f2)"
  rm -f "$out"
}

for n in $sizes; do
  data=$(mktemp -d "$base/brook-scale.XXXXXX")
  start
  load=$($LOAD "$url" $((n / 8)) 8)
  # Idle: wait (at most 90 s) until the kernel has written back what creating
  # the partitions dirtied, as it does by itself within dirty_expire (30 s).
  # Stopping earlier makes the clean stop's syncfs write it: 5-8 s at 10,000
  # partitions on this VM.
  t0=$(now)
  for _ in $(seq 900); do
    [ "$(awk '/^Dirty:/ {print $2}' /proc/meminfo)" -lt 32768 ] && break
    sleep 0.1
  done
  settle_s=$(awk "BEGIN {print $(now) - $t0}")
  rss_mib=$(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 ))
  fds=$(ls /proc/$pid/fd | wc -l)
  maps=$(wc -l < /proc/$pid/maps) # against vm.max_map_count (65530 by default)
  reserved_mib=$(( $(du -sk "$data" | cut -f1) / 1024 ))
  t0=$(now); kill -TERM $pid; wait $pid; stop_s=$(awk "BEGIN {print $(now) - $t0}")
  start; clean_restart_s=$ready_s
  kill -KILL $pid; wait $pid 2>/dev/null || true
  start; kill9_restart_s=$ready_s
  fds_after=$(ls /proc/$pid/fd | wc -l)
  kill -TERM $pid; wait $pid
  printf 'partitions=%s %s settle_s=%.1f idle_rss_mib=%s open_fds=%s mappings=%s open_fds_after_kill9_restart=%s reserved_mib=%s clean_stop_s=%.2f serving_after_clean_stop_s=%.2f serving_after_kill9_s=%.2f\n' \
    "$n" "$load" "$settle_s" "$rss_mib" "$fds" "$maps" "$fds_after" "$reserved_mib" "$stop_s" "$clean_restart_s" "$kill9_restart_s"
  rm -rf "$data" "$data.log"
done
