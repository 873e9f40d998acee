#!/usr/bin/env bash
# The cost of validation at the broker (docs/schemas.md): W1
# (`brook bench --scenario w1`, 1,000,000 records, 10,000 keys, one batch in
# flight) with a realistic 1 KiB JSON order event framed with its schema id,
# into a topic bound to the subject in `full` mode (every payload parsed and
# validated against the JSON Schema), in `id` mode, and into an unbound
# topic: the same broker, the same value, in one run; and `full` once more on
# a second broker that checks each request on one thread
# (BROOK_VALIDATION_THREADS=1). The order rotates every round, and every run
# starts after `sync` and a page-cache warm-up of its own (lib.sh): without
# them, whichever run came third in a round ran at half the rate, with two
# to three times the broker CPU, paying for the memory and writeback of the
# runs before it. Prints every run as JSON, then medians and the ratios.
#   scripts/bench-schemas.sh [ROUNDS] [RECORDS]   (default 3, 1000000)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
rounds=${1:-3}
records=${2:-1000000}
cargo build --release -q -p brook
B=target/release/brook
dir=${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}
out=$(mktemp)
value=$(mktemp)
trap 'rm -f "$out" "$value"; if [ -n "${pid:-}" ]; then stop_broker; fi' EXIT

# The JSON Schema of the event (also broker/benches/validation.rs's).
schema=$(cat broker/benches/order.schema.json)

# The event: about 1 KiB of JSON after the 5-byte frame (magic 0, id 1).
event() {
  python3 - "$1" <<'PY'
import json, struct, sys
items = [{"sku": f"SKU-{i:05d}", "name": f"Widget model {i} in matte finish", "quantity": i % 3 + 1,
          "unit_price": 12.5 + i} for i in range(8)]
e = {"order_id": "ord-1042", "customer_id": "cust-77", "placed_at": "2026-11-30T12:00:00Z",
     "currency": "EUR", "items": items,
     "shipping": {"street": "1 Long Street", "city": "Amsterdam", "postcode": "1011AB", "country": "NL"},
     "total": sum(i["quantity"] * i["unit_price"] for i in items), "note": "leave at the door"}
body = json.dumps(e).encode()
body += b" " * max(0, 1024 - 5 - len(body))
sys.stdout.buffer.write(b"\0" + struct.pack(">I", int(sys.argv[1])) + body)
PY
}

# The broker's CPU time so far, in clock ticks (user + system).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# run TOPIC [LABEL]: W1 into TOPIC, recorded under LABEL (default TOPIC).
run() {
  local name=$1 label=${2:-$1} line before after
  sync
  warm_page_cache "$dir"
  before=$(cpu_ticks)
  line=$($B bench --url "$url" --broker-pid "$pid" --json --topic "$name" --scenario w1 \
    --records "$records" --value-file "$value" 2>/dev/null | tail -1)
  after=$(cpu_ticks)
  cpu=$(awk -v a="$before" -v b="$after" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
  echo "$round $label ${line%\}},\"broker_cpu_s\":$cpu}" | tee -a "$out"
}

# A broker with the subject registered and topics plain, full and id
# (BROOK_VALIDATION_THREADS, if set, applies to it).
prepare() {
  start_broker "$B"
  http=$(grep -o 'metrics=[^ ]*' "$data.addr" | cut -d= -f2)
  body=$(python3 -c 'import json,sys; print(json.dumps({"schemaType":"JSON","schema":sys.argv[1]}))' "$schema")
  id=$(curl -sf -X POST "http://$http/subjects/orders-value/versions" -d "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  event "$id" >"$value"
  for t in plain full id; do
    $B topic create "$t" --partitions 8 --url "$url" >/dev/null
  done
  $B schema bind full --value-subject orders-value --mode full --url "$url" >/dev/null
  $B schema bind id --value-subject orders-value --mode id --url "$url" >/dev/null
}

# `full` on a broker checking each request on one thread, recorded as full-1thread.
run_one_thread() {
  export BROOK_VALIDATION_THREADS=1
  prepare
  unset BROOK_VALIDATION_THREADS
  run full full-1thread
  stop_broker
  pid=
}

for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 0 ]; then run_one_thread; fi
  prepare
  case $((round % 3)) in
    1) order="plain full id" ;;
    2) order="full id plain" ;;
    0) order="id plain full" ;;
  esac
  for t in $order; do run "$t"; done
  stop_broker
  pid=
  if [ $((round % 2)) -eq 1 ]; then run_one_thread; fi
done

med() { { grep " $1 " "$out" || true; } | { field "$2" || true; } | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
echo "medians of $rounds rounds of w1, $records records of $(wc -c <"$value") bytes ($(nproc) CPUs)"
p=$(med plain msgs_per_s)
printf '  %-8s %14s %10s %12s\n' topic "msgs/s" "vs plain" "broker CPU s"
for t in plain id full full-1thread; do
  m=$(med "$t" msgs_per_s)
  printf '  %-8s %14s %10s %12s\n' "$t" "${m:--}" "$(ratio "$m" "$p")" "$(med "$t" broker_cpu_s)"
done
