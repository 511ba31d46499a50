#!/usr/bin/env bash
# Sets up the environment (scripts/setup_env.sh) and runs the main job, the offline demo: a synthetic
# person re-ID data set in Market-1501 layout, BDB training, evaluation and a report folder.
# Extra arguments go to `bdb-ext demo` (see `bdb-ext demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
BDB_EXTRAS="${BDB_EXTRAS:-demo}" bash scripts/setup_env.sh
"${BDB_VENV:-.venv}/bin/bdb-ext" demo "$@"
