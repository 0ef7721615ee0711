#!/usr/bin/env bash
# The main command: installs what is missing, then runs segbind's demonstration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec python3 -m host_sim.demo "$@"
