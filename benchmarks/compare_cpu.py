"""The issue-14 CPU table in one command: fused vs eager reference vs torch.compile of the reference,
at the paper shapes, every pass, medians of interleaved rounds.

    python benchmarks/compare_cpu.py                 # paper shapes, fp32 + bf16 (1-2 minutes on 2 cores)
    python benchmarks/compare_cpu.py --rounds 3 --small   # a quick look at small shapes

Rows: drop + max pool, drop (128x2048x24x8), mining + soft-margin loss (N=128 and 512, D=1536); fwd and fwd+bwd
(dense upstream gradient), plus fwd+bwd with the stride-0 gradient that ``y.sum().backward()`` passes
(given directly, so both rows time the same forward) for the drop ops. Columns: the fused op, the eager reference code, torch.compile (inductor) of the reference,
compiled / fused (>= 1.0: fused is at least as fast as compiled) and, for the stride-0 rows, the
fused time against the dense row's (the stride-0 case must be no slower). Prints a Markdown table
with the machine, torch version, threads and CPU capability beside it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from bench_drop import PAPER_SHAPE, SMALL_SHAPE, drop_steps  # noqa: E402
from bench_mining import mining_steps  # noqa: E402
from bench_utils import dtype_name, interleaved_medians  # noqa: E402

VARIANTS = ("fused", "reference", "compiled")
MINING_SIZES = (128, 512)  # the paper's batch, and the largest N issue 14 holds the mining forward to


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per row (median over them)")
    parser.add_argument("--small", action="store_true", help=f"drop ops at {SMALL_SHAPE} instead of {PAPER_SHAPE}")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated, from float32, bfloat16, float16")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]
    shape = SMALL_SHAPE if args.small else PAPER_SHAPE
    d = 1536
    started = time.perf_counter()
    rows = []  # (label, pass, shape, dtype, medians)
    for dtype in dtypes:
        for op in ("drop+maxpool", "drop"):
            for backward, grad in ((False, "dense"), (True, "dense"), (True, "stride0")):
                medians = interleaved_medians(drop_steps(op, backward, grad, shape, dtype, "cpu", VARIANTS), args.rounds)
                pass_name = ("fwd+bwd" if backward else "fwd") + (" (stride-0 grad)" if grad == "stride0" else "")
                rows.append((op, pass_name, "x".join(map(str, shape)), dtype_name(dtype), medians))
                torch._dynamo.reset()
                print(f"  measured {op} {pass_name} {dtype_name(dtype)} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        for n in MINING_SIZES:
            for backward in (False, True):
                medians = interleaved_medians(mining_steps(n, d, dtype, "cpu", backward, VARIANTS), max(args.rounds, 15))
                rows.append(("mining + loss", "fwd+bwd" if backward else "fwd", f"N={n} D={d}", dtype_name(dtype), medians))
                torch._dynamo.reset()
    print(f"{_cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}, {time.strftime('%Y-%m-%d')}, "
          f"median of {args.rounds} interleaved rounds (15 for mining)\n")
    print("| op | pass | shape | dtype | fused | reference (eager) | compiled | compiled / fused | stride-0 / dense (fused) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    dense = {}
    for op, pass_name, shape_name, dtype, m in rows:
        if pass_name == "fwd+bwd":
            dense[(op, dtype)] = m["fused"]
        stride0 = ""
        if "stride-0" in pass_name and (op, dtype) in dense:
            stride0 = f"{m['fused'] / dense[(op, dtype)]:.2f}"
        print(f"| {op} | {pass_name} | {shape_name} | {dtype} | {_ms(m['fused'])} | {_ms(m['reference'])} | "
              f"{_ms(m['compiled'])} | **{m['compiled'] / m['fused']:.2f}x** | {stride0} |")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
