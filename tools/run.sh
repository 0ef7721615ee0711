#!/usr/bin/env bash
# The main command: installs what is missing, then runs the fleet simulation on its embedded
# default (24 cameras, 60 s, in-process, simulated time) and writes its report to ./out/.
# Options pass through: --cameras 1044, --no-bug, --broker local, --broker mqtt://HOST:PORT, --help.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec python3 -m host_sim.fleet "$@"
