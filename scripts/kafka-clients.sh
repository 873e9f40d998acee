#!/usr/bin/env bash
# Installs the Kafka clients the Kafka-listener tests use (tests/tests/kafka.rs):
# kcat from Debian's packages, and kafka-python and confluent-kafka
# (librdkafka) in a virtual environment at target/kafka-venv.
#
#   scripts/kafka-clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kcat >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq kcat
fi
venv=target/kafka-venv
if [[ ! -x $venv/bin/python ]]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt-get update -qq
    apt-get install -y -qq python3-venv
    python3 -m venv "$venv"
  fi
fi
"$venv/bin/pip" install -q -r tests/kafka/requirements.txt
