#!/usr/bin/env bash
# The test command: installs what is missing (tools/setup.sh test), then runs pytest in the
# project's venv. Arguments pass through to pytest, e.g. `bash tools/test.sh -x -q -k fleet`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh test
exec .venv/bin/python -m pytest "$@"
