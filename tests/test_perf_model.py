"""benchmarks/perf_model.py: the interface the docs, the launch audit and the GPU benchmark use, and
the kernels.md targets that its predictions must meet."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import perf_model  # noqa: E402

PAPER = {"N": 128, "C": 2048, "H": 24, "W": 8}


def test_predict_returns_bytes_flops_time_and_floor():
    r = perf_model.predict("drop", "fwd", PAPER, torch.float32, "H100")
    size = 128 * 2048 * 24 * 8 * 4
    assert set(r) == {"bytes", "flops", "us", "floor_us"}
    assert r["bytes"] == pytest.approx(size * (2 / 3) + size)  # kept rows read, y written
    assert r["floor_us"] == pytest.approx(r["bytes"] / 3.35e12 * 1e6)
    assert r["us"] == pytest.approx(r["floor_us"] / perf_model.HBM_EFFICIENCY)
    fp16 = perf_model.predict("drop", "fwd", PAPER, torch.float16, "H200")
    assert fp16["bytes"] == pytest.approx(r["bytes"] / 2)


def test_small_kernels_cost_the_launch_floor():
    r = perf_model.predict("mining_loss", "fwd", {"N": 128, "D": 1536}, torch.float32)
    assert r["us"] == pytest.approx(3 * perf_model.LAUNCH_FLOOR_US)


@pytest.mark.parametrize("gpu", ["H100", "H200"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_drop_and_max_pool_fwd_bwd_meet_the_kernels_md_target(gpu, dtype):
    r = perf_model.predict("drop_pool_max", "fwd+bwd", PAPER, dtype, gpu)
    assert r["floor_us"] / r["us"] >= 0.7


@pytest.mark.parametrize(
    "args,match",
    [
        (("nope", "fwd", PAPER, torch.float32), "op must be one of"),
        (("drop", "both", PAPER, torch.float32), "pass_ must be one of"),
        (("drop", "fwd", {"N": 1, "D": 2}, torch.float32), "keys N, C, H, W"),
        (("mining_loss", "fwd", PAPER, torch.float32, "A100"), "gpu must be one of"),
    ],
)
def test_bad_arguments_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        perf_model.predict(*args)


def test_occupancy_arithmetic():
    assert perf_model.resident_blocks_per_sm(256, 40, 0) == 6
    assert perf_model.resident_blocks_per_sm(256, 41, 0) == 5  # 41 registers allocate as 48
    assert perf_model.resident_blocks_per_sm(256, 32, 25 * 1024) == 8
    assert perf_model.resident_blocks_per_sm(256, 32, 40 * 1024) == 5  # shared memory limits
    for blocks, ceiling in [(6, 40), (5, 48), (4, 64)]:
        spec = perf_model.KernelSpec("memory", 256, blocks)
        assert perf_model.register_ceiling(spec) == ceiling
        assert perf_model.resident_blocks_per_sm(256, ceiling, 0) >= blocks
