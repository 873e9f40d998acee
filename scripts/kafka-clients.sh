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
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
python_venv target/kafka-venv tests/kafka/requirements.txt
