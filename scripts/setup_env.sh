#!/usr/bin/env bash
# Creates (or reuses) the virtual environment and builds bdb_ext into it.
#   BDB_VENV              where the venv lives (default: .venv in the source tree)
#   BDB_EXTRAS            pip extras to install with the package (default: test)
#   TORCH_SPEC            the torch requirement (default: torch==2.14.1 torchvision==0.29.1)
# Build switches (BDB_EXT_CUDA, TORCH_CUDA_ARCH_LIST, NVCC_FLAGS, MAX_JOBS, BDB_EXT_DEBUG) pass through
# to setup.py; see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BDB_VENV:-.venv}"
extras="${BDB_EXTRAS:-test}"
torch_spec="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
"$py" -m pip install --quiet $torch_spec
"$py" -m pip install --quiet setuptools wheel ninja pybind11 numpy
# --no-build-isolation builds against the torch just installed (an isolated build could pick another).
MAX_JOBS="${MAX_JOBS:-2}" "$py" -m pip install --quiet --no-build-isolation -e ".[${extras}]"
"$py" -c "import bdb_ext; print('bdb_ext built:', bdb_ext.build_info())"
