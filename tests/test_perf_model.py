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
    r = perf_model.predict("pairwise_distance", "bwd", {"N": 16, "D": 8}, torch.float32)
    assert r["us"] == pytest.approx(perf_model.LAUNCH_FLOOR_US)


def test_mining_loss_at_n128_counts_every_launch():
    """Forward: split-K select, its finalize (a latency kernel above the floor) and the fused loss kernel;
    backward: autograd's ones_like and the fused loss backward, then grouping, hub chunks and rows, all at the
    launch floor."""
    shape = {"N": 128, "D": 1536}
    floor = perf_model.LAUNCH_FLOOR_US
    finalize = perf_model._finalize_item_us("mining_splitk_finalize_kernel", 128, 1536)
    assert finalize > floor
    fwd = perf_model.predict("mining_loss", "fwd", shape, torch.float32)
    assert fwd["us"] == pytest.approx((1 + perf_model.LOSS_LAUNCHES["fwd"]) * floor + finalize)
    bwd = perf_model.predict("mining_loss", "bwd", shape, torch.float32)
    assert bwd["us"] == pytest.approx((3 + perf_model.LOSS_LAUNCHES["bwd"]) * floor)


@pytest.mark.parametrize(
    "N,D,path,ksplits",
    [(128, 1536, "splitk", 16), (128, 48, "splitk", 3), (128, 16, "select", 1), (512, 1536, "select", 1),
     (2048, 1536, "gemm", 1)],
)
def test_mining_path_follows_the_launch_rules(N, D, path, ksplits):
    got = perf_model.mining_path(N, D)
    assert got["path"] == path and got["ksplits"] == ksplits
    assert got["group_in_block"] == (N <= 512)
    assert perf_model.mining_path(4096, 64, torch.float64)["path"] == "select"  # float64: no GEMM form


def _launch(kernel, blocks, threads):
    return perf_model.Launch(kernel, (blocks, 1, 1), (threads, 1, 1))


def test_latency_kernels_are_judged_by_predicted_time():
    group = "void bdb::mining_group_pairs_kernel<int>(long const*, long const*, long, long, bool, int*, int*, int*, int*, int*)"
    small = perf_model.check_parallelism(_launch(group, 1, 1024), {"N": 128, "D": 64})
    assert small.ok and small.have == pytest.approx(perf_model.LAUNCH_FLOOR_US)
    # At N = 512 the block's own rank loop (one round of 1024 pairs) is close to its budget of 2 floors.
    assert 8 < perf_model.check_parallelism(_launch(group, 1, 1024), {"N": 512, "D": 64}).have <= 10
    # The rank kernel at N = 65536: 512 x 128 issue-bound blocks are hundreds of waves.
    rank = "void bdb::mining_rank_pairs_kernel<int>(long const*, long const*, long, int*)"
    big = perf_model.Launch(rank, (512, 128, 1), (256, 1, 1))
    large = perf_model.check_parallelism(big, {"N": 65536, "D": 64})
    assert not large.ok and large.have > 100 * perf_model.LAUNCH_FLOOR_US
    # A pass whose predicted time is 10 times the kernel's makes room for it.
    assert perf_model.check_parallelism(big, {"N": 65536, "D": 64}, pass_us=10 * large.have).ok
    # Single-warp finalize items: a second wave once 2N exceeds 132 SMs x 32 resident one-warp blocks.
    fin = "void bdb::mining_gemm_finalize_kernel<float>(float const*)"
    one = perf_model.launch_us(_launch(fin, 4224, 32), {"N": 2112, "D": 2048})
    two = perf_model.launch_us(_launch(fin, 4225, 32), {"N": 2112, "D": 2048})
    assert one > perf_model.LAUNCH_FLOOR_US
    assert two == pytest.approx(2 * one)
    with pytest.raises(ValueError, match="not a latency kernel"):
        perf_model.launch_us(_launch("void bdb::drop_block_kernel<float, 4>(float*)", 1, 256), {})


def test_slow_instantiations_get_their_own_register_ceiling():
    spec = perf_model.KERNELS["mining_gemm_bounds_kernel"]
    assert perf_model.register_ceiling(spec, args=["float", "4"]) == 128  # 2 blocks of 256 per SM
    assert perf_model.register_ceiling(spec, args=["float", "1"]) == 255  # the scalar fallback: 1 block
    select = perf_model.KERNELS["mining_select_kernel"]
    assert perf_model.register_ceiling(select, args=["c10::Half", "8"]) == 64
    assert perf_model.register_ceiling(select, args=["double", "2"]) == 128


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
