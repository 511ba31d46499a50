#!/usr/bin/env bash
# The GPU check, in stages (scripts/gpu_check/stages.py, in priority order): build, tests, sanitizers,
# bench_ops, bench_mining, bench_train, runtime. Each stage is its own command and writes
# OUTDIR/<stage>.json (and .log) as soon as it ends, and the driver updates OUTDIR/summary.json and
# OUTDIR/summary.md after every stage, so a stage that fails or runs out of time loses only itself.
#
# Usage:
#   scripts/gpu_check.sh OUTDIR              all stages, no time limits (your own GPU)
#   scripts/gpu_check.sh --budgeted OUTDIR   each stage killed at its budget (docs/testing.md; 11:50 in all)
#   scripts/gpu_check.sh --rehearse OUTDIR   every stage on the CPU: tiny shapes, the emulated CUDA kernels (CI)
#   --only a,b,c                             just those stages (still in the fixed order), added to
#                                            OUTDIR's summary: a run split into several commands
# Then: python benchmarks/summarize.py --gpu OUTDIR [--write-readme]
#
# Works offline on a bare machine that has PyTorch (a CUDA build), nvcc and compute-sanitizer; the tree
# runs through PYTHONPATH (no install). Environment:
#   PYTHON                         interpreter with torch (default: python3)
#   BDB_GPU_CHECK_BUDGET_<STAGE>   seconds, overrides that stage's budget (implies a limit)
#   BDB_GPU_CHECK_INJECT           "stage=fail,other=hang": make stages fail / hang (tests of this script)
# Exit status: 0 if every stage passed or was skipped, 1 otherwise (every stage runs either way).
set -u -o pipefail

usage() {
  sed -n '2,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

mode=unlimited
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rehearse) mode=rehearse; shift ;;
    --budgeted) mode=budgeted; shift ;;
    --only) only="${2:-}"; shift 2 ;;
    --only=*) only="${1#--only=}"; shift ;;
    -h | --help) usage ;;
    -*) echo "gpu_check: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[[ $# -eq 1 ]] || usage

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export PYTHONUNBUFFERED=1
cd "$ROOT" || exit 2
STAGE_DIR="$ROOT/scripts/gpu_check"

rehearse_flag=()
[[ "$mode" == rehearse ]] && rehearse_flag=(--rehearse)
stage_list="$("$PYTHON" "$STAGE_DIR/stages.py" --list "${rehearse_flag[@]}")" || {
  echo "gpu_check: cannot list the stages (is PYTHON=$PYTHON a Python with torch?)" >&2
  exit 2
}
reserve="$("$PYTHON" -c 'import sys; sys.path.insert(0, sys.argv[1]); import stages; print(stages.DEADLINE_RESERVE_S)' "$STAGE_DIR")"

if [[ -n "$only" ]]; then
  for want in ${only//,/ }; do
    grep -q "^$want " <<<"$stage_list" || { echo "gpu_check: no stage named '$want'" >&2; exit 2; }
  done
fi

# A full run starts a fresh summary; --only adds its stages to the one there (a run split into
# several commands, e.g. where one command may last at most 10 minutes).
[[ -z "$only" ]] && rm -f "$OUT/summary.json" "$OUT/summary.md"
echo "gpu_check: mode $mode, results in $OUT"
overall=0
while read -r name script budget; do
  if [[ -n "$only" && ",$only," != *",$name,"* ]]; then
    continue
  fi
  limit=()
  deadline=()
  shown_budget=none
  override_var="BDB_GPU_CHECK_BUDGET_${name^^}"
  if [[ "$mode" != unlimited || -n "${!override_var:-}" ]]; then
    # Soft deadline inside the stage, then TERM at the budget and KILL 10 s later.
    limit=(timeout --kill-after=10 "$budget")
    soft=$((budget > 2 * reserve ? budget - reserve : budget / 2))
    deadline=(--deadline-s "$soft")
    shown_budget="$budget"
  fi
  echo "== $name (budget ${shown_budget} s)"
  rm -f "$OUT/$name.json"
  t0=$SECONDS
  "${limit[@]}" "$PYTHON" "$STAGE_DIR/$script" "$OUT" "${rehearse_flag[@]}" "${deadline[@]}" 2>&1 |
    tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  "$PYTHON" "$STAGE_DIR/record.py" "$OUT" "$name" "$rc" "$((SECONDS - t0))" "$shown_budget" "${rehearse_flag[@]}" ||
    overall=1
  ((rc == 0)) || overall=1
done <<<"$stage_list"

echo
cat "$OUT/summary.md"
exit $overall
