"""Benchmark fixtures. CI runs `pytest benchmarks/ --benchmark-disable` as a smoke test (each case
once, nothing timed); see bench_utils.py for the sizes that run."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_compile_cache():
    yield
    torch._dynamo.reset()
