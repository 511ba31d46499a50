#!/usr/bin/env bash
# Checks that a CUDA build of bdb_ext._C really carries device code: build_info() says cuda=True
# with the configured archs, cuobjdump finds a cubin (SASS) for every configured arch and PTX for
# every "+PTX" arch, every .cu under csrc/cuda/ is in the fatbin, every __global__ kernel
# declared under csrc/cuda/ is compiled for every arch, and scripts/audit_cuda_binary.py passes (no
# stack or local memory, registers within the occupancy model, 128-bit vector loads). Needs no GPU.
#
# Usage: scripts/check_cuda_binary.sh [PATH/TO/_C.so]
#   default: the bdb_ext._C that `import bdb_ext` would load.
# Environment:
#   PYTHON           interpreter with torch (python3)
#   BDB_EXPECT_ARCHS the arch list to require, e.g. "8.0;9.0+PTX" (default: TORCH_CUDA_ARCH_LIST if
#                    set, else what build_info() reports); build_info() must report the same list
#   CUOBJDUMP        the cuobjdump to use (default: $CUDA_HOME/bin, /usr/local/cuda/bin, PATH, or the
#                    copy bundled with triton)
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
fail=0
problem() {
  echo "check_cuda_binary: FAIL: $*" >&2
  fail=1
}

SO="${1:-}"
if [[ -z "$SO" ]]; then
  SO="$(cd "$ROOT" && "$PYTHON" -c 'import importlib.util as u; print(u.find_spec("bdb_ext._C").origin)')" || {
    echo "check_cuda_binary: cannot find bdb_ext._C (pass the .so path)" >&2
    exit 2
  }
fi
[[ -f "$SO" ]] || { echo "check_cuda_binary: no such file: $SO" >&2; exit 2; }
echo "library: $SO"

find_cuobjdump() {
  local c
  for c in "${CUOBJDUMP:-}" "${CUDA_HOME:-/nonexistent}/bin/cuobjdump" /usr/local/cuda/bin/cuobjdump \
    "$(command -v cuobjdump 2>/dev/null)" \
    "$("$PYTHON" -c 'import os, triton; print(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump"))' 2>/dev/null)"; do
    if [[ -n "$c" && -x "$c" ]]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}
CUOBJDUMP_BIN="$(find_cuobjdump)" || { echo "check_cuda_binary: cuobjdump not found (set CUOBJDUMP)" >&2; exit 2; }
echo "cuobjdump: $CUOBJDUMP_BIN"

# build_info() of exactly this file, loaded without importing the bdb_ext package.
INFO="$("$PYTHON" - "$SO" <<'EOF'
import importlib.util, sys
import torch  # noqa: F401  (loads libc10/libtorch for the extension)
spec = importlib.util.spec_from_file_location("bdb_ext._C", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
info = module.build_info()
print(f"{info['cuda']}|{info['cuda_archs']}|{info['cuda_version']}|{info['torch_version']}")
EOF
)" || { echo "check_cuda_binary: could not load $SO to read build_info()" >&2; exit 2; }
IFS='|' read -r INFO_CUDA INFO_ARCHS INFO_CUDA_VERSION INFO_TORCH <<<"$INFO"
echo "build_info: cuda=$INFO_CUDA cuda_archs=$INFO_ARCHS cuda_version=$INFO_CUDA_VERSION torch=$INFO_TORCH"
[[ "$INFO_CUDA" == "True" ]] || problem "build_info()['cuda'] is $INFO_CUDA, expected True"

EXPECT="${BDB_EXPECT_ARCHS:-${TORCH_CUDA_ARCH_LIST:-$INFO_ARCHS}}"
[[ -n "$EXPECT" ]] || problem "no arch list to check (build_info() reports none)"
[[ "$EXPECT" == "$INFO_ARCHS" ]] || problem "build_info()['cuda_archs'] is '$INFO_ARCHS', expected '$EXPECT'"

ELFS="$("$CUOBJDUMP_BIN" --list-elf "$SO" 2>&1)" || problem "cuobjdump --list-elf failed: $ELFS"
PTXS="$("$CUOBJDUMP_BIN" --list-ptx "$SO" 2>&1)" || true
SYMBOLS="$("$CUOBJDUMP_BIN" -symbols "$SO" 2>&1)" || problem "cuobjdump -symbols failed"
# "arch symbol" for every device function of every cubin.
FUNCS="$(awk '/^arch = /{arch=$3} /STT_FUNC/{print arch, $NF}' <<<"$SYMBOLS")"

# The kernels the sources declare, as their mangled identifiers (<length><name>).
mapfile -t KERNELS < <(cat "$ROOT"/csrc/cuda/*.cu "$ROOT"/csrc/cuda/*.cuh 2>/dev/null |
  tr '\n' ' ' | grep -oE '__global__([[:space:]]+__launch_bounds__\([^)]*\))?[[:space:]]+void[[:space:]]+[A-Za-z_][A-Za-z_0-9]*' |
  awk '{print $NF}' | sort -u)
((${#KERNELS[@]} > 0)) || problem "no __global__ kernels found under csrc/cuda"

IFS=';' read -r -a ARCHS <<<"$EXPECT"
for entry in "${ARCHS[@]}"; do
  arch="${entry%+PTX}"
  sm="sm_${arch/./}"
  if grep -qE "\.${sm}\.cubin" <<<"$ELFS"; then
    echo "ok  SASS for $sm"
  else
    problem "no cubin for $sm (arch $entry) in: $(tr '\n' ' ' <<<"$ELFS")"
    continue
  fi
  if [[ "$entry" == *+PTX ]]; then
    if grep -qE "\.${sm}\.ptx" <<<"$PTXS"; then echo "ok  PTX for $sm"; else problem "no PTX for $sm (arch $entry)"; fi
  fi
  for kernel in "${KERNELS[@]}"; do
    if grep -qE "^${sm} .*${#kernel}${kernel}" <<<"$FUNCS"; then
      n="$(grep -cE "^${sm} .*${#kernel}${kernel}" <<<"$FUNCS")"
      echo "ok  $sm $kernel ($n instantiations)"
    else
      problem "kernel $kernel has no device code for $sm"
    fi
  done
done

for cu in "$ROOT"/csrc/cuda/*.cu; do
  if grep -q "identifier = .*/$(basename "$cu")\$" <<<"$SYMBOLS"; then
    echo "ok  device code from $(basename "$cu")"
  else
    problem "$(basename "$cu") contributed no device code (is the library older than the sources?)"
  fi
done

# Stack, local memory, registers and shared memory against the occupancy model, 128-bit vector
# accesses: one table in the log, a failure on any violation.
echo "device-code audit (scripts/audit_cuda_binary.py):"
"$PYTHON" "$ROOT/scripts/audit_cuda_binary.py" --cuobjdump "$CUOBJDUMP_BIN" "$SO" ||
  problem "the device-code audit found violations (see its table above)"

if ((fail)); then
  echo "check_cuda_binary: FAILED" >&2
  exit 1
fi
echo "check_cuda_binary: OK (${#KERNELS[@]} kernels x ${#ARCHS[@]} archs)"
