"""Helpers shared by the benchmark modules: devices, sizes, and timing that waits for the GPU.

Sizes: the small shapes always run; the paper-size shapes run on CUDA, and on the CPU only with
BDB_BENCH_FULL=1 (they take minutes on 2 cores).
"""

from __future__ import annotations

import os

import torch


def full_size_enabled(device: str) -> bool:
    return device == "cuda" or os.environ.get("BDB_BENCH_FULL") == "1"


def benchmark_devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def synchronized(fn, device: str):
    """fn, followed by a device sync so the benchmark times the GPU work, not the launch."""
    if device != "cuda":
        return fn

    def run():
        result = fn()
        torch.cuda.synchronize()
        return result

    return run
