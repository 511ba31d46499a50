"""Helpers shared by the benchmark modules: devices, sizes, timing that waits for the GPU, and
interleaved timing of several variants.

Sizes: the small shapes always run; the paper-size shapes run on CUDA, and on the CPU only with
BDB_BENCH_FULL=1 (they take minutes on 2 cores).

Interleaving: every benchmark group times all of its variants in rounds (A B C, B C A, C A B, ...),
so a noisy machine (other jobs, frequency changes) slows every variant alike and the ratios stay
fair, where timing A to completion and then B would charge one variant for the noise of its minute.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable

import torch

__all__ = [
    "benchmark_devices",
    "dtype_name",
    "full_size_enabled",
    "interleaved_medians",
    "record_group",
    "synchronized",
]


def full_size_enabled(device: str) -> bool:
    return device == "cuda" or os.environ.get("BDB_BENCH_FULL") == "1"


def benchmark_devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def synchronized(fn, device: str):
    """fn, followed by a device sync so the benchmark times the GPU work, not the launch."""
    if device != "cuda":
        return fn

    def run():
        result = fn()
        torch.cuda.synchronize()
        return result

    return run


def interleaved_medians(steps: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time in seconds of each step, timed in interleaved rounds.

    Round r runs the steps in the order rotated by r (A B C, B C A, ...), so no variant always runs
    first after the previous round's last one. Each step must already wait for its device (see
    :func:`synchronized`). Python's garbage collector is paused while timing, as pytest-benchmark does.
    """
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for k in range(len(names)):
                name = names[(r + k) % len(names)]
                start = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: statistics.median(values) for name, values in times.items()}


def record_group(benchmark, steps: dict[str, Callable[[], object]], rounds: int, **info) -> None:
    """Time a benchmark group's variants interleaved and record their medians in extra_info.

    With ``--benchmark-disable`` (the CI smoke test) every step runs once and nothing is timed.
    Otherwise pytest-benchmark times the "fused" step on its own (its table) and the interleaved
    medians of every variant, with each one's ratio to "fused", go to ``extra_info`` (what
    summarize.py prints; the ratios to write down).
    """
    if benchmark.disabled:
        for step in steps.values():
            step()
        benchmark(steps["fused"])
        return
    medians = interleaved_medians(steps, rounds)
    benchmark.extra_info.update(
        info,
        medians_s=medians,
        ratio_to_fused={name: median / medians["fused"] for name, median in medians.items()},
        rounds=rounds,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        gpu=torch.cuda.get_device_name() if info.get("device") == "cuda" else None,
    )
    benchmark.pedantic(steps["fused"], rounds=rounds, iterations=1)
