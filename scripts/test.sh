#!/usr/bin/env bash
# Sets up the environment (scripts/setup_env.sh) and runs the test suite, then the benchmarks as a
# quick smoke test (each case once, nothing timed). Extra arguments go to the test-suite pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
py="${BDB_VENV:-.venv}/bin/python"
"$py" -m pytest tests/ -q "$@"
"$py" -m pytest benchmarks/ -q --benchmark-disable
