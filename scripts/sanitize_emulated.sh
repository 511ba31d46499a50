#!/usr/bin/env bash
# Race and memory checks of the CUDA kernels without a GPU: builds the plain C++ emulation programs
# (tests/emulation/*.cpp: the harness self-test, the driver of the drop and mining kernels, the
# planted-bug kernel; no Python or libtorch in them) with ThreadSanitizer, and separately with
# AddressSanitizer + UBSan, and runs them. Any sanitizer report or wrong result fails the script.
#
# It also proves the checks can fail: the planted missing __syncthreads must give a TSan data race,
# and the planted off-by-one read must give an ASan heap-buffer-overflow.
#
# Usage: scripts/sanitize_emulated.sh [BUILD_DIR]     (default: build/sanitize)
# Environment: CXX (g++), PYTHON (python3; only to locate torch's headers), TORCH_INCLUDE (skip that),
#              SANITIZE_JOBS (2 parallel compiles), BDB_SANITIZE_QUICK=1 (fewer driver shapes).
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build/sanitize}"
CXX="${CXX:-g++}"
PYTHON="${PYTHON:-python3}"
JOBS="${SANITIZE_JOBS:-2}"
mkdir -p "$BUILD"

if [[ -z "${TORCH_INCLUDE:-}" ]]; then
  TORCH_INCLUDE="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')" || {
    echo "sanitize_emulated: cannot locate torch's headers (set TORCH_INCLUDE or PYTHON)" >&2
    exit 2
  }
fi

SRC="$ROOT/tests/emulation"
BASE=(-std=c++20 -O1 -g -fno-omit-frame-pointer -pthread -DBDB_CUDA_EMULATION -Wall -Wno-unknown-pragmas
      -isystem "$TORCH_INCLUDE")
TSAN=(-fsanitize=thread)
ASAN=(-fsanitize=address,undefined -fno-sanitize-recover=all)

export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
export ASAN_OPTIONS="halt_on_error=1 exitcode=67 detect_leaks=1 strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 exitcode=68"
# A kernel that hangs outside a barrier must not hang CI either.
export BDB_EMU_WATCHDOG_S="${BDB_EMU_WATCHDOG_S:-120}"

start_all=$SECONDS
failures=()

# name source[+source...] flags...
DRIVER="sanitizer_driver.cpp+sanitizer_mining_cases.cpp"
builds=(
  "selftest_tsan harness_selftest.cpp ${TSAN[*]}"
  "driver_tsan $DRIVER ${TSAN[*]}"
  "planted_tsan planted_bug_program.cpp ${TSAN[*]}"
  "planted_tsan_missing_sync planted_bug_program.cpp ${TSAN[*]} -DBDB_PLANT_BUG_MISSING_SYNC"
  "selftest_asan harness_selftest.cpp ${ASAN[*]}"
  "driver_asan $DRIVER ${ASAN[*]}"
  "planted_asan planted_bug_program.cpp ${ASAN[*]}"
  "planted_asan_off_by_one planted_bug_program.cpp ${ASAN[*]} -DBDB_PLANT_BUG_OFF_BY_ONE"
)

echo "== building ${#builds[@]} sanitized programs in $BUILD ($JOBS at a time)"
build_one() {
  local name="$1" sources=() k
  IFS=+ read -r -a sources <<<"$2"
  shift 2
  for k in "${!sources[@]}"; do sources[k]="$SRC/${sources[k]}"; done
  if "$CXX" "${BASE[@]}" "$@" "${sources[@]}" -o "$BUILD/$name" >"$BUILD/$name.build.log" 2>&1; then
    echo "   built $name"
  else
    echo "   BUILD FAILED: $name (log below)"
    cat "$BUILD/$name.build.log"
    return 1
  fi
}
pids=()
names=()
for spec in "${builds[@]}"; do
  # shellcheck disable=SC2086
  build_one $spec &
  pids+=($!)
  names+=("${spec%% *}")
  while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" 2>/dev/null
  [[ -x "$BUILD/${names[$i]}" ]] || failures+=("build ${names[$i]}")
done
echo "   builds done in $((SECONDS - start_all)) s"
if ((${#failures[@]} > 0)); then
  printf 'sanitize_emulated: FAILED: %s\n' "${failures[@]}"
  exit 1
fi

driver_args=()
[[ "${BDB_SANITIZE_QUICK:-0}" == 1 ]] && driver_args=(--quick)

# Must pass with no report.
run_clean() {
  local name="$1"
  shift
  local t0=$SECONDS
  if "$BUILD/$name" "$@" >"$BUILD/$name.run.log" 2>&1 && ! grep -qE "ThreadSanitizer|AddressSanitizer|runtime error:" "$BUILD/$name.run.log"; then
    echo "   ok    $name $* ($((SECONDS - t0)) s)"
  else
    echo "   FAIL  $name $* ($((SECONDS - t0)) s); its output:"
    tail -n 80 "$BUILD/$name.run.log"
    failures+=("$name")
  fi
}

# Must fail with the given report (the planted bugs).
run_must_report() {
  local name="$1" pattern="$2"
  local t0=$SECONDS
  "$BUILD/$name" >"$BUILD/$name.run.log" 2>&1
  local rc=$?
  if ((rc != 0)) && grep -q "$pattern" "$BUILD/$name.run.log"; then
    echo "   ok    $name: caught ($pattern, exit $rc, $((SECONDS - t0)) s)"
  else
    echo "   FAIL  $name: the planted bug was NOT reported as '$pattern' (exit $rc); its output:"
    tail -n 40 "$BUILD/$name.run.log"
    failures+=("$name (planted bug not caught)")
  fi
}

echo "== ThreadSanitizer"
run_clean selftest_tsan all
run_clean driver_tsan "${driver_args[@]}"
run_clean planted_tsan
run_must_report planted_tsan_missing_sync "WARNING: ThreadSanitizer: data race"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
run_clean selftest_asan all
run_clean driver_asan "${driver_args[@]}"
run_clean planted_asan
run_must_report planted_asan_off_by_one "ERROR: AddressSanitizer: heap-buffer-overflow"

echo "== total $((SECONDS - start_all)) s"
if ((${#failures[@]} > 0)); then
  printf 'sanitize_emulated: FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "sanitize_emulated: all clean, both planted bugs caught"
