#!/usr/bin/env bash
# Creates (or reuses) the virtual environment and builds bdb_ext into it.
#   BDB_VENV              where the venv lives (default: .venv in the source tree)
#   BDB_EXTRAS            pip extras to install with the package (default: test)
#   TORCH_SPEC            the torch requirement (default: torch==2.14.1 torchvision==0.29.1)
# Build switches (BDB_EXT_CUDA, TORCH_CUDA_ARCH_LIST, NVCC_FLAGS, MAX_JOBS, BDB_EXT_DEBUG) pass through
# to setup.py; see README.md.
#
# An up-to-date build is reused: the build is skipped when a stamp of its inputs (csrc/, setup.py,
# pyproject.toml, this source folder, the torch and Python it builds against, the build switches and the
# visible GPUs) matches the one written by the last build in this venv and bdb_ext imports. Only the extras
# asked for are then installed (so `scripts/test.sh` after `scripts/demo.sh` rebuilds nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BDB_VENV:-.venv}"
extras="${BDB_EXTRAS:-test}"
torch_spec="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
stamp_file="$venv/.bdb_ext_build_stamp"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
"$py" -m pip install --quiet $torch_spec
"$py" -m pip install --quiet setuptools wheel ninja pybind11 numpy

# Prints the stamp of the build's inputs.
build_stamp() {
  "$py" - <<'PY'
import hashlib
import os
import sys
from pathlib import Path

import torch

digest = hashlib.sha256()
inputs = sorted(p for p in Path("csrc").rglob("*") if p.is_file()) + [Path("setup.py"), Path("pyproject.toml")]
for path in inputs:
    digest.update(f"{path}\0".encode() + path.read_bytes())
switches = ("BDB_EXT_CUDA", "TORCH_CUDA_ARCH_LIST", "NVCC_FLAGS", "BDB_EXT_DEBUG", "CUDA_HOME", "CUDA_PATH", "CC",
            "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS")
digest.update(repr([(name, os.environ.get(name, "")) for name in switches]).encode())
gpus = ([torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [])
digest.update(repr((os.getcwd(), sys.version, torch.__version__, torch.version.cuda, gpus)).encode())
print(digest.hexdigest())
PY
}

# Prints the requirements of the extras in $1 (comma-separated), following bdb_ext[...] self-references.
extra_requirements() {
  "$py" - "$1" <<'PY'
import re
import sys

try:
    import tomllib
except ImportError:  # Python 3.10: the copy pip carries
    from pip._vendor import tomli as tomllib

with open("pyproject.toml", "rb") as handle:
    project = tomllib.load(handle)["project"]
optional, seen, todo, requirements = project["optional-dependencies"], set(), sys.argv[1].split(","), []
while todo:
    extra = todo.pop().strip()
    if not extra or extra in seen:
        continue
    seen.add(extra)
    for requirement in optional[extra]:
        nested = re.fullmatch(rf"{project['name']}\[(.*)\]", requirement.replace(" ", ""))
        if nested:
            todo.extend(nested.group(1).split(","))
        else:
            requirements.append(requirement)
print("\n".join(project["dependencies"] + requirements))
PY
}

stamp="$(build_stamp)"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && [ -x "$venv/bin/bdb-ext" ] \
    && "$py" -c "import bdb_ext" 2>/dev/null; then
  echo "bdb_ext: the build is up to date (csrc/, setup.py, torch and build switches unchanged); not rebuilt"
  mapfile -t requirements < <(extra_requirements "$extras")
  "$py" -m pip install --quiet "${requirements[@]}"
else
  rm -f "$stamp_file"
  # --no-build-isolation builds against the torch just installed (an isolated build could pick another).
  MAX_JOBS="${MAX_JOBS:-2}" "$py" -m pip install --quiet --no-build-isolation -e ".[${extras}]"
  echo "$stamp" > "$stamp_file"
fi
"$py" -c "import bdb_ext; print('bdb_ext built:', bdb_ext.build_info())"
