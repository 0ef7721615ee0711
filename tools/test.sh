#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec python3 -m pytest "$@"
