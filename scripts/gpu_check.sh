#!/usr/bin/env bash
# One command for a machine with a GPU: build bdb_ext for the GPU present, check the binary, run the
# whole test suite (the cuda backend included), run compute-sanitizer (memcheck, racecheck, initcheck,
# synccheck) on the CUDA tests, run the benchmarks, and write OUTDIR/summary.md.
#
# Works offline on a bare machine that has PyTorch (CUDA build), nvcc and compute-sanitizer: it
# builds in place with setup.py (no pip, no downloads) and runs the tree through PYTHONPATH.
#
# Usage: scripts/gpu_check.sh OUTDIR
# Environment:
#   PYTHON              interpreter with torch (python3)
#   MAX_JOBS            parallel compile jobs (default: number of CPUs)
#   SANITIZER_TESTS     what compute-sanitizer runs pytest on (default: tests)
#   SANITIZER_SELECT    pytest -k expression for it (default: "cuda and not emulated")
#   SANITIZER_TOOLS     default: "memcheck racecheck initcheck synccheck"
#   SKIP_BENCHMARKS=1   skip the benchmarks
# Exit status: 0 if every step passed, 1 otherwise (every step runs either way).
set -u -o pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
cd "$ROOT" || exit 2

STEP_NAMES=()
STEP_STATUS=()
STEP_SECONDS=()
overall=0

# step NAME COMMAND...: runs it with its output in OUT/NAME.log, records status and time.
step() {
  local name="$1"
  shift
  local t0=$SECONDS
  echo "== $name: $*"
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  STEP_NAMES+=("$name")
  STEP_SECONDS+=($((SECONDS - t0)))
  if ((rc == 0)); then
    STEP_STATUS+=("pass")
    echo "   pass ($((SECONDS - t0)) s)"
  else
    STEP_STATUS+=("FAIL (exit $rc)")
    overall=1
    echo "   FAIL (exit $rc, $((SECONDS - t0)) s); last lines of $OUT/$name.log:"
    tail -n 25 "$OUT/$name.log" | sed 's/^/   | /'
  fi
  return $rc
}

find_tool() {
  local name="$1" c
  for c in "${CUDA_HOME:-/nonexistent}/bin/$name" "${CUDA_HOME:-/nonexistent}/compute-sanitizer/$name" \
    "/usr/local/cuda/bin/$name" "/usr/local/cuda/compute-sanitizer/$name" "$(command -v "$name" 2>/dev/null)"; do
    [[ -n "$c" && -x "$c" ]] && { echo "$c"; return 0; }
  done
  return 1
}

# --- environment -------------------------------------------------------------------------------
environment() {
  nvidia-smi || true
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available()); print(torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))'
  "$(find_tool nvcc)" --version
  "$(find_tool compute-sanitizer)" --version || echo "compute-sanitizer: not found"
  git -C "$ROOT" log -1 --oneline 2>/dev/null || true
}
step environment environment
ARCH="$("$PYTHON" -c 'import torch; m, n = torch.cuda.get_device_capability(0); print(f"{m}.{n}")' 2>/dev/null)"
GPU_NAME="$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0))' 2>/dev/null)"
if [[ -z "$ARCH" ]]; then
  echo "gpu_check: torch sees no CUDA device; nothing to check on a GPU" >&2
  exit 1
fi
echo "   GPU: $GPU_NAME (compute capability $ARCH)"

# --- build for this GPU ---------------------------------------------------------------------------
build() {
  rm -f "$ROOT"/bdb_ext/_C*.so
  BDB_EXT_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" "$PYTHON" setup.py build_ext --inplace
}
step build build
SO="$(ls "$ROOT"/bdb_ext/_C*.so 2>/dev/null | head -1)"
step binary_check env BDB_EXPECT_ARCHS="$ARCH" PYTHON="$PYTHON" "$ROOT/scripts/check_cuda_binary.sh" "$SO"

# --- the whole test suite (cpu, cuda-emulated and cuda backends) -----------------------------------
step tests "$PYTHON" -m pytest tests -q -rs -p no:cacheprovider --junitxml="$OUT/tests.xml"

# --- compute-sanitizer on the CUDA tests ----------------------------------------------------------
SANITIZER="$(find_tool compute-sanitizer)"
SELECT="${SANITIZER_SELECT:-cuda and not emulated}"
for tool in ${SANITIZER_TOOLS:-memcheck racecheck initcheck synccheck}; do
  if [[ -z "$SANITIZER" ]]; then
    STEP_NAMES+=("sanitizer_$tool"); STEP_STATUS+=("FAIL (compute-sanitizer not found)"); STEP_SECONDS+=(0); overall=1
    continue
  fi
  extra=()
  [[ "$tool" == memcheck ]] && extra=(--leak-check full)
  # No caching allocator: every tensor is its own allocation, so an overrun past a tensor is caught
  # instead of landing in the next block of the same segment.
  step "sanitizer_$tool" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool "$tool" "${extra[@]}" \
    --error-exitcode 99 --target-processes all --print-limit 50 \
    "$PYTHON" -m pytest ${SANITIZER_TESTS:-tests} -q -x -p no:cacheprovider -k "$SELECT"
done

# --- benchmarks ------------------------------------------------------------------------------------
if [[ "${SKIP_BENCHMARKS:-0}" != 1 ]]; then
  if step benchmarks "$PYTHON" -m pytest benchmarks -q -p no:cacheprovider --benchmark-json="$OUT/benchmarks.json"; then
    "$PYTHON" benchmarks/summarize.py "$OUT/benchmarks.json" >"$OUT/benchmarks.txt" 2>&1 || true
  fi
fi

# --- summary -------------------------------------------------------------------------------------
{
  echo "# bdb_ext GPU check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: $(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null || echo unknown)"
  echo "- GPU: $GPU_NAME (sm_${ARCH/./}); driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo "- $("$PYTHON" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}")')"
  echo "- build_info: $("$PYTHON" -c 'import bdb_ext; print(bdb_ext.build_info())' 2>&1 | tail -1)"
  echo
  echo "| step | result | seconds | log |"
  echo "| --- | --- | --- | --- |"
  for i in "${!STEP_NAMES[@]}"; do
    echo "| ${STEP_NAMES[$i]} | ${STEP_STATUS[$i]} | ${STEP_SECONDS[$i]} | ${STEP_NAMES[$i]}.log |"
  done
  echo
  if [[ -f "$OUT/tests.xml" ]]; then
    echo "## Tests"
    "$PYTHON" - "$OUT/tests.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
print(f"{total['tests']} tests: {total['failures']} failed, {total['errors']} errors, {total['skipped']} skipped")
for s in suites:
    for case in s.iter("testcase"):
        for kind in ("failure", "error"):
            el = case.find(kind)
            if el is not None:
                print(f"- {kind}: {case.get('classname')}::{case.get('name')}: {(el.get('message') or '')[:200]}")
EOF
    echo
  fi
  echo "## compute-sanitizer"
  for log in "$OUT"/sanitizer_*.log; do
    [[ -f "$log" ]] || continue
    name="$(basename "$log" .log)"
    summary="$(grep -h "ERROR SUMMARY" "$log" | awk '{s += $4} END {print s + 0}')"
    tests_line="$(grep -E "[0-9]+ (passed|failed)" "$log" | tail -1)"
    echo "- ${name#sanitizer_}: ${summary} error(s) reported; pytest: ${tests_line:-no result line}"
  done
  echo
  if [[ -f "$OUT/benchmarks.txt" ]]; then
    echo "## Benchmarks (medians; ratios against the reference code)"
    echo '```'
    cat "$OUT/benchmarks.txt"
    echo '```'
  fi
} >"$OUT/summary.md"

echo
cat "$OUT/summary.md"
exit $overall
