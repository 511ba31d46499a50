"""The stages of the GPU check, in the order they run, with their time budgets.

One source of truth for scripts/gpu_check.sh (which asks ``python stages.py --list``), the rehearsal
test and docs/testing.md. The order is the priority order: a short time on a GPU spends itself on
what matters most first.

Budgets are wall-clock seconds on one H200 with 16 CPU cores, including the Python start-up. The
driver gives each stage a soft deadline ``budget - DEADLINE_RESERVE_S`` (it stops starting new work
and writes what it has) and kills it at the budget.
"""

from __future__ import annotations

import argparse
import os
from typing import NamedTuple

__all__ = ["DEADLINE_RESERVE_S", "REHEARSAL_BUDGET_S", "STAGES", "StageSpec", "budget_of", "total_budget_s"]


class StageSpec(NamedTuple):
    name: str
    script: str  # under scripts/gpu_check/
    budget_s: int  # on one H200
    what: str


STAGES: tuple[StageSpec, ...] = (
    StageSpec("build", "stage_build.py", 120,
              "in-place build for the GPU present (its arch only), ptxas resource usage, binary check"),
    StageSpec("tests", "stage_tests.py", 90, "the cuda-backend tests (pytest -k 'cuda and not emulated'), junit XML"),
    StageSpec("sanitizers", "stage_sanitizers.py", 140,
              "compute-sanitizer memcheck, racecheck, synccheck, initcheck over the standalone op driver"),
    StageSpec("bench_ops", "stage_bench_ops.py", 150,
              "D2D copy baseline; drop and drop_pool fwd/bwd/fwd+bwd at 128x2048x24x8 vs reference and compile"),
    StageSpec("bench_mining", "stage_bench_mining.py", 90,
              "mining + soft-margin loss, N 128..4096 x D 1536/2048, fwd and fwd+bwd, peak memory"),
    StageSpec("bench_train", "stage_bench_train.py", 60,
              "BDB training step, ResNet-50 384x128 batch 128, bf16 AMP, channels_last: fused vs reference"),
    StageSpec("runtime", "stage_runtime.py", 60,
              "sync-debug training step, CUDA-graph replay, bitwise determinism, > 2^31-element ops"),
)

# Seconds between a stage's soft deadline and its kill: enough to write the result and exit.
DEADLINE_RESERVE_S = 15
# Per-stage limit in the CPU rehearsal (2 shared cores in CI); a hang there is a bug to report quickly.
REHEARSAL_BUDGET_S = 400


def total_budget_s() -> int:
    return sum(s.budget_s for s in STAGES)


def budget_of(spec: StageSpec, rehearse: bool) -> int:
    """The stage's budget; ``BDB_GPU_CHECK_BUDGET_<NAME>`` (seconds) overrides it, e.g. to test a time-out."""
    override = os.environ.get(f"BDB_GPU_CHECK_BUDGET_{spec.name.upper()}")
    if override:
        value = int(override)
        if value <= 0:
            raise ValueError(f"BDB_GPU_CHECK_BUDGET_{spec.name.upper()} must be a positive number of seconds")
        return value
    return REHEARSAL_BUDGET_S if rehearse else spec.budget_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print 'name script budget_s' per stage")
    parser.add_argument("--rehearse", action="store_true", help="with --list: the rehearsal budgets")
    parser.add_argument("--table", action="store_true", help="the markdown budget table of docs/testing.md")
    args = parser.parse_args()
    if args.table:
        print("| stage | budget | what |\n| --- | --- | --- |")
        for s in STAGES:
            print(f"| `{s.name}` | {s.budget_s // 60}:{s.budget_s % 60:02d} | {s.what} |")
        t = total_budget_s()
        print(f"| **all** | **{t // 60}:{t % 60:02d}** | |")
        return
    for s in STAGES:
        print(s.name, s.script, budget_of(s, args.rehearse))


if __name__ == "__main__":
    main()
