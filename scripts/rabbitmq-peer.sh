#!/usr/bin/env bash
# The peer for Brook's queue benchmark (`brook bench queue --consumers C`,
# scripts/bench-queue.sh): the same workload against a RabbitMQ quorum queue on a
# fresh rabbitmq-server, so that Brook's figures have a peer measured in the
# same run. Prints every run as JSON, then the medians.
#   scripts/rabbitmq-peer.sh [ROUNDS]   (default 3; needs rabbitmq-server:
#                                       apt-get install rabbitmq-server)
# Each round runs the peer (peers/rabbitmq) for 1, 4 and 16 consumers, each
# run on a node of its own in a new directory under $BROOK_BENCH_DIR (default
# the temp dir), removed after it stops, so that every run starts from an
# empty node and its server_peak_rss_kib is that run's alone. Before each
# round it writes and deletes a 2 GiB file there, as bench-standard.sh does
# (see lib.sh why); BROOK_BENCH_COLD=1 skips that.
#
# Durability: the node runs with the Debian package's defaults. A quorum
# queue on a single node is a Raft group of one member: the broker confirms a
# publish once the message is in the member's Raft log (its write-ahead log,
# which is fsynced before the confirm by default), so a confirmed record
# survives a crash of the node or the machine. Consumer acks are commands in
# the same log, but AMQP does not answer them, so the consumers' "acked" is
# the client's view (see consume_phase in peers/rabbitmq/src/main.rs).
# Nothing needs setting for a quorum queue on one node in 3.10: the
# quorum_queue feature flag is enabled when a new node boots, and a new
# queue gets min(quorum_cluster_size = 3, nodes) = 1 member. The WAL's sync
# method is Ra's default, datasync (fdatasync).
#
# Sourced, it only defines start_rabbitmq DIR (sets $rabbitmq_pid,
# $rabbitmq_beam_pid and $rabbitmq_url), stop_rabbitmq and rabbitmq_round.
set -euo pipefail

# The server scripts the Debian package ships. /usr/sbin/rabbitmq-server
# would su to the rabbitmq user and use /var/lib/rabbitmq and /var/log; this
# one runs the node as the caller with every path from the environment.
RABBITMQ_SERVER_BIN=${RABBITMQ_SERVER_BIN:-/usr/lib/rabbitmq/bin/rabbitmq-server}

# Starts a RabbitMQ node with everything under DIR (data, logs, config,
# Erlang cookie) on free loopback ports: AMQP, Erlang distribution, and an
# epmd of its own, started here so that it is ours to stop (a node that finds
# no epmd starts a daemonized one nobody would stop). Returns once the AMQP
# port accepts connections, which the node opens as the last step of its
# boot; fails after 60 s, printing the node's logs.
start_rabbitmq() {
  local dir=$1 amqp_port dist_port deadline
  read -r amqp_port dist_port rabbitmq_epmd_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
  mkdir -p "$dir/mnesia" "$dir/log"
  # No setting is changed from the package's defaults; the file exists so
  # that the node reads this one and not /etc/rabbitmq's.
  echo "# Debian package defaults (scripts/rabbitmq-peer.sh)" >"$dir/rabbitmq.conf"
  echo "[]." >"$dir/enabled_plugins"
  : >"$dir/rabbitmq-env.conf"
  epmd -port "$rabbitmq_epmd_port" -address 127.0.0.1 >"$dir/epmd.log" 2>&1 &
  rabbitmq_epmd_pid=$!
  deadline=$((SECONDS + 10))
  until epmd -port "$rabbitmq_epmd_port" -names >/dev/null 2>&1; do
    if ! kill -0 "$rabbitmq_epmd_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "epmd did not start; its log:" >&2
      cat "$dir/epmd.log" >&2
      stop_rabbitmq
      return 1
    fi
    sleep 0.05
  done
  HOME=$dir \
    ERL_EPMD_PORT=$rabbitmq_epmd_port \
    RABBITMQ_NODENAME="brook-bench-$$-$RANDOM@localhost" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$amqp_port \
    RABBITMQ_DIST_PORT=$dist_port \
    RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf \
    RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf \
    RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config \
    RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
    RABBITMQ_MNESIA_BASE=$dir/mnesia \
    RABBITMQ_LOG_BASE=$dir/log \
    RABBITMQ_PID_FILE=$dir/rabbitmq.pid \
    "$RABBITMQ_SERVER_BIN" >"$dir/server.log" 2>&1 &
  rabbitmq_pid=$!
  rabbitmq_url="amqp://guest:guest@127.0.0.1:$amqp_port/%2f"
  deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null; do
    if ! kill -0 "$rabbitmq_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "rabbitmq-server did not start; its output and logs:" >&2
      cat "$dir/server.log" "$dir"/log/*.log >&2 2>/dev/null || true
      stop_rabbitmq
      return 1
    fi
    sleep 0.2
  done
  # The server script runs the Erlang VM as its child (erl execs beam.smp).
  rabbitmq_beam_pid=$(pgrep -P "$rabbitmq_pid" -x beam.smp | head -1)
  if [ -z "$rabbitmq_beam_pid" ]; then
    echo "rabbitmq-server runs no beam.smp under pid $rabbitmq_pid" >&2
    stop_rabbitmq
    return 1
  fi
}

# Stops the node start_rabbitmq started (its server script stops the VM
# cleanly on SIGTERM) and its epmd, and waits for both; a VM still there 60 s
# later is killed.
stop_rabbitmq() {
  local beam=${rabbitmq_beam_pid:-} deadline
  if [ -n "${rabbitmq_pid:-}" ]; then
    kill "$rabbitmq_pid" 2>/dev/null || true
    wait "$rabbitmq_pid" 2>/dev/null || true
  fi
  if [ -n "$beam" ]; then
    deadline=$((SECONDS + 60))
    while kill -0 "$beam" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "beam.smp $beam still running 60 s after SIGTERM; killing it" >&2
        kill -9 "$beam" 2>/dev/null || true
      fi
      sleep 0.1
    done
  fi
  if [ -n "${rabbitmq_epmd_pid:-}" ]; then
    kill "$rabbitmq_epmd_pid" 2>/dev/null || true
    wait "$rabbitmq_epmd_pid" 2>/dev/null || true
  fi
  rabbitmq_pid='' rabbitmq_beam_pid='' rabbitmq_epmd_pid=''
}

# One round of the peer: the rabbitmq-peer-bench binary PEER runs the queue
# workload with 1, 4 and 16 consumers, each on a fresh node in a new
# directory under BASE (removed after); every run is appended to OUT as
# "ROUND rabbitmq-queue-cC JSON". $RECORDS records per run (default 200,000).
rabbitmq_round() {
  local peer=$1 base=$2 out=$3 round=$4 c line
  for c in 1 4 16; do
    rabbitmq_dir=$(mktemp -d "$base/rabbitmq-peer.XXXXXX")
    start_rabbitmq "$rabbitmq_dir"
    line=$("$peer" --url "$rabbitmq_url" --consumers "$c" --records "${RECORDS:-200000}" --server-pid "$rabbitmq_beam_pid")
    echo "$round rabbitmq-queue-c$c $line" | tee -a "$out"
    stop_rabbitmq
    rm -rf "$rabbitmq_dir"
    rabbitmq_dir=
  done
}

main() {
  . "$(dirname "$0")/lib.sh"
  cd "$(dirname "$0")/.."
  local rounds=${1:-3}
  cargo build --release -q --manifest-path peers/rabbitmq/Cargo.toml
  local B=peers/rabbitmq/target/release/rabbitmq-peer-bench
  local base=${BROOK_BENCH_DIR:-/tmp}
  out=$(mktemp)
  rabbitmq_dir=
  trap 'rm -f "$out"; stop_rabbitmq; if [ -n "$rabbitmq_dir" ]; then rm -rf "$rabbitmq_dir"; fi' EXIT
  # Ends through the EXIT trap on ^C or kill too, so no node is left behind.
  trap 'exit 130' INT
  trap 'exit 143' TERM
  for round in $(seq 1 "$rounds"); do
    warm_page_cache "$base"
    rabbitmq_round "$B" "$base" "$out" "$round"
  done
  local erlang
  erlang=$(erl -noshell -eval '{ok, V} = file:read_file(filename:join([code:root_dir(), "releases", erlang:system_info(otp_release), "OTP_VERSION"])), io:put_chars(string:trim(V)), halt().')
  echo "medians of $rounds rounds (rabbitmq-server $(dpkg-query -W -f '${Version}' rabbitmq-server), Erlang/OTP $erlang, quorum queue):"
  local c w
  for c in 1 4 16; do
    w=rabbitmq-queue-c$c
    echo "  $w: $(grep " $w " "$out" | field acked_per_s | median) acked/s, fetch-to-ack p50 $(grep " $w " "$out" | field p50_us | median) us, p99 $(grep " $w " "$out" | field p99_us | median) us, p999 $(grep " $w " "$out" | field p999_us | median) us; published $(grep " $w " "$out" | field published_per_s | median) /s; server peak RSS $(grep " $w " "$out" | field server_peak_rss_kib | median) KiB"
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
