#!/usr/bin/env bash
# Installs what the console's browser tests use (tests/tests/console.rs):
# Debian's Chromium (/usr/bin/chromium) and Playwright for Python in a
# virtual environment at target/console-venv. Playwright drives the Debian
# browser through its executable path: nothing downloads a browser build.
#
#   scripts/browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x /usr/bin/chromium ]]; then
  apt-get update -qq
  apt-get install -y -qq chromium
fi
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
python_venv target/console-venv tests/console/requirements.txt
