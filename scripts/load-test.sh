#!/usr/bin/env bash
# Issue 11's load test: a fresh release broker, then `brook bench load`:
# the fast producers' rate alone, then beside 1,000 more connections
# (idle producers, long-polling fetchers, subscribers, and 50 slow
# subscribers that read a message a second from a busy topic). Prints the
# bench's JSON: both rates and their ratio, every request error, and the
# broker's peak RSS (VmHWM) and anonymous RSS at the end.
#   scripts/load-test.sh [CONNECTIONS] [SECONDS]   (default: 1000 10)
#   BROOK=/path/to/brook scripts/load-test.sh      (another broker binary)
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-1000}
seconds=${2:-10}
if [ -z "${BROOK:-}" ]; then cargo build --release -q -p brook; fi
B=${BROOK:-target/release/brook}
# 1,000 client connections: the bench process needs the descriptors too.
ulimit -n 20000
. scripts/lib.sh
start_broker "$B"
trap stop_broker EXIT
"$B" bench --url "$url" --topic load --partitions 8 --broker-pid "$pid" --json \
  load --connections "$connections" --slow 50 --seconds "$seconds" --size "${SIZE:-100}"
