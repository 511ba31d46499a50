#!/usr/bin/env bash
# Sets up the environment (scripts/setup_env.sh) and runs the main job. Extra arguments go to it.
set -euo pipefail
cd "$(dirname "$0")/.."
BDB_EXTRAS="${BDB_EXTRAS:-demo}" bash scripts/setup_env.sh
"${BDB_VENV:-.venv}/bin/python" examples/layer_demo.py "$@"
