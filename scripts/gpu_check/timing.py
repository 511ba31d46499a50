"""Timing for the benchmark stages: CUDA events on a GPU, perf_counter in the rehearsal.

Variants are interleaved (A B C A B C ...) after a warm-up, so a clock or load change hits all of
them alike, and each gets the median of its repeats. Nothing here asserts on time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["interleaved_times", "peak_bytes", "summarize_times"]


def _time_calls_cuda(variants: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    events = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            events[name].append((start, end))
    torch.cuda.synchronize()
    return {name: [s.elapsed_time(e) * 1e3 for s, e in pairs] for name, pairs in events.items()}


def _time_calls_host(variants: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e6)
    return times


def interleaved_times(variants: dict[str, Callable[[], object]], device: str, warmup: int = 3,
                      reps: int = 20) -> dict[str, list[float]]:
    """Microseconds of each call of each variant, variants interleaved, after ``warmup`` rounds.

    On CUDA each call is bracketed by events on the current stream (so the host launching ahead
    does not count, and no sync happens between calls); elsewhere by the host clock.
    """
    if device == "cuda":
        for _ in range(warmup):
            for fn in variants.values():
                fn()
        torch.cuda.synchronize()
        return _time_calls_cuda(variants, reps)
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    return _time_calls_host(variants, reps)


def summarize_times(times_us: list[float]) -> dict[str, float]:
    """median / min / max in microseconds and the repeat count."""
    return {"median_us": round(statistics.median(times_us), 3), "min_us": round(min(times_us), 3),
            "max_us": round(max(times_us), 3), "reps": len(times_us)}


def peak_bytes(fn: Callable[[], object], device: str) -> int | None:
    """Peak CUDA memory allocated while ``fn`` runs beyond what was allocated before (None on the CPU)."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - base)
