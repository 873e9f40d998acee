# Shared by the benchmark scripts: source it, then `start_broker BROOK`
# (sets $data, $pid and $url) ... `stop_broker`.

# Starts BROOK serving a new data directory under $dir (BROOK_BENCH_DIR or
# the temp dir) on ephemeral ports, with any further arguments as extra
# `serve` flags; returns once it prints its listening line, which it does
# when it serves.
start_broker() {
  data=$(mktemp -d "${dir:-${BROOK_BENCH_DIR:-${TMPDIR:-/tmp}}}/brook-bench.XXXXXX")
  # The Kafka listener on a free port (by environment: older builds ignore it).
  BROOK_KAFKA_LISTEN=127.0.0.1:0 "$1" serve --data-dir "$data" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 "${@:2}" >"$data.addr" 2>/dev/null &
  pid=$!
  for _ in $(seq 300); do grep -q listening "$data.addr" 2>/dev/null && break; sleep 0.1; done
  url="http://$(grep -o 'grpc=[^ ]*' "$data.addr" | cut -d= -f2)"
}

# Stops the broker start_broker started and removes its data.
stop_broker() {
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data" "$data.addr"
}

# Writes and deletes a 2 GiB file in directory $1, unless BROOK_BENCH_COLD is
# set: on the VMs this was measured on, memory the guest freed a while ago is
# handed back to the host and costs a hypervisor fault per page when the page
# cache next takes it, which made whichever run came first 2-3x slower.
warm_page_cache() {
  [ -z "${BROOK_BENCH_COLD:-}" ] || return 0
  dd if=/dev/zero of="$1/brook-bench-warm" bs=1M count=2048 status=none
  rm -f "$1/brook-bench-warm"
}

# The median of the numbers on standard input.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The values of JSON field $1 in the lines on standard input.
field() { grep -o "\"$1\":[0-9.]*" | cut -d: -f2; }

# Makes the virtual environment DIR (installing python3-venv if Python
# lacks it) and installs the requirements file REQS into it.
python_venv() {
  if [[ ! -x $1/bin/python ]]; then
    if ! python3 -m venv "$1" 2>/dev/null; then
      apt-get update -qq
      apt-get install -y -qq python3-venv
      python3 -m venv "$1"
    fi
  fi
  "$1/bin/pip" install -q -r "$2"
}
