"""Launch-shape audit: at the paper shapes, every kernel the CUDA host code launches offers enough
parallelism to fill a 132-SM H100/H200, by the model of docs/performance.md (benchmarks/perf_model.py):
bytes in flight by Little's law for the memory-bound kernels, resident warps for the FMA-bound ones,
and for the latency kernels (the mining finalizers' single-warp items, the one-block pair grouping) a
predicted time within their budget (two launch floors, or a tenth of the pass's predicted time).

The emulator records each launch's kernel, grid and block (``_start_launch_recording``); at these
sizes it records without running the kernels (mode 2), so the inputs are uninitialised and never
touched. The register and shared-memory figures the model assumes per kernel are enforced on the
built library by scripts/audit_cuda_binary.py, so the two audits together cover the occupancy.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import perf_model  # noqa: E402

PAPER_MAP = {"N": 128, "C": 2048, "H": 24, "W": 8}
PAPER_RECT = [8, 0, 8, 8]  # round(0.33 * 24) = 8 rows, full width
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
RECORD_AND_RUN, RECORD_ONLY = 1, 2


@pytest.fixture(scope="module")
def emu(emulated_ops):
    """torch.ops.bdb_ext_emu (the raw ops, no Python argument handling)."""
    return torch.ops.bdb_ext_emu


@contextlib.contextmanager
def recorded_launches(emu, mode: int = RECORD_ONLY):
    """Yields a list that holds, after the block, every launch (perf_model.Launch) made inside it."""
    launches: list[perf_model.Launch] = []
    emu._start_launch_recording(mode)
    try:
        yield launches
    finally:
        for line in emu._stop_launch_recording().splitlines():
            kernel, grid, block = line.split("\t")
            launches.append(perf_model.Launch(kernel, tuple(map(int, grid.split())), tuple(map(int, block.split()))))


def assert_fills_the_gpu(launches, shape, op=None, pass_=None):
    """Every launch passes perf_model.check_parallelism on both GPUs; latency kernels get the budget
    of the pass (op, pass_) they belong to, as perf_model.predict prices it."""
    assert launches, "the op launched no kernel"
    for gpu in ("H100", "H200"):
        pass_us = None if op is None else perf_model.predict(op, pass_, shape, torch.float32, gpu)["us"]
        for launch in launches:
            v = perf_model.check_parallelism(launch, shape, gpu, pass_us)
            assert v.ok, (
                f"{gpu}: {launch.kernel} offers {v.have:.4g} {v.unit}, the model needs {v.need:.4g} ({v.detail})"
            )


def _feature_map(dtype, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(*PAPER_MAP.values(), dtype=dtype, memory_format=fmt)


def _dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


DROP_PASSES = ["drop-fwd", "drop-bwd", "pool_max-fwd", "pool_max-bwd", "pool_avg-fwd", "pool_avg-bwd"]


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("what", DROP_PASSES)
def test_drop_kernels_fill_the_gpu_at_the_paper_shape(emu, what, dtype, channels_last):
    rect = torch.tensor(PAPER_RECT)
    x = _feature_map(dtype, channels_last)
    op, pass_ = what.split("-")
    N, C = PAPER_MAP["N"], PAPER_MAP["C"]
    with recorded_launches(emu) as launches:
        if op == "drop":
            (emu.batch_drop_block if pass_ == "fwd" else emu._batch_drop_block_backward)(x, rect)
        else:
            mode = op.removeprefix("pool_")
            if pass_ == "fwd":
                emu.drop_pool(x, rect, mode)
            else:
                argmax = torch.zeros((N, C) if mode == "max" else (0, 0), dtype=torch.int64)
                emu._drop_pool_backward(torch.empty(N, C, dtype=dtype), argmax, rect, mode, list(x.shape),
                                        channels_last)
    assert_fills_the_gpu(launches, PAPER_MAP)


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
def test_drop_backward_of_an_expanded_gradient_fills_the_gpu(emu, dtype):
    """The gradient of y.sum(): stride 0 everywhere, read in place by the strided drop kernel."""
    g = torch.empty((), dtype=dtype).expand(*PAPER_MAP.values())
    with recorded_launches(emu) as launches:
        emu._batch_drop_block_backward(g, torch.tensor(PAPER_RECT))
    assert [perf_model.parse_kernel(l.kernel)[0] for l in launches] == ["drop_block_strided_kernel"]
    assert_fills_the_gpu(launches, PAPER_MAP)


MINING_SHAPES = [(N, D) for N in (128, 512, 2048, 4096) for D in (1536, 2048)]

# The kernels each path launches (perf_model.mining_path mirrors csrc/cuda/mining_launch.cuh).
FORWARD_KERNELS = {
    "splitk": ["mining_splitk_kernel", "mining_splitk_finalize_kernel"],
    "select": ["mining_select_kernel", "mining_finalize_kernel"],
    "gemm": ["mining_norms_kernel", "mining_gemm_bounds_kernel", "mining_gemm_finalize_kernel"],
}


def _backward_kernels(N):
    ordering = [] if perf_model.mining_path(N, 1)["group_in_block"] else ["mining_rank_pairs_kernel",
                                                                          "mining_scatter_pairs_kernel"]
    return ["mining_group_pairs_kernel", *ordering, "mining_backward_chunks_kernel", "mining_backward_rows_kernel"]


def _pairwise_kernels(N, D):
    if perf_model.splitk_ksplits(N, N, D) > 1:
        return ["mining_splitk_kernel", "pairwise_splitk_finalize_kernel"]
    return ["pairwise_distance_kernel"]


@pytest.mark.parametrize(
    "what,N,D",
    [pytest.param(w, N, D, id=f"{w}-N{N}-D{D}") for w in ("pairwise_distance-fwd", "mine-fwd", "mine-bwd")
     for N, D in MINING_SHAPES],
)
def test_mining_kernels_fill_the_gpu(emu, what, N, D):
    x = torch.empty(N, D)
    labels = torch.arange(N) // 4  # identities of 4 samples, as P x K batches
    if what == "pairwise_distance-fwd":
        with recorded_launches(emu) as launches:
            emu.pairwise_distance(x, x, False)
        assert [perf_model.parse_kernel(l.kernel)[0] for l in launches] == _pairwise_kernels(N, D)
        assert_fills_the_gpu(launches, {"N": N, "D": D}, "pairwise_distance", "fwd")
        return
    if what == "mine-fwd":
        with recorded_launches(emu) as launches:
            emu.batch_hard_mine(x, labels)
        expected = FORWARD_KERNELS[perf_model.mining_path(N, D)["path"]]
    else:
        # A valid selection without hubs (every row is the target of two pairs).
        i = torch.arange(N)
        idx_p = i - i % 4 + (i + 1) % 4
        idx_n = (i + 4) % N
        ones = torch.ones(N)
        with recorded_launches(emu) as launches:
            emu._batch_hard_mine_backward(ones, ones, x, idx_p, idx_n, ones, ones)
        expected = _backward_kernels(N)
    # The model prices the kernels the host code really launches.
    assert [perf_model.parse_kernel(l.kernel)[0] for l in launches] == expected
    assert_fills_the_gpu(launches, {"N": N, "D": D}, "mining_loss", what.removeprefix("mine-"))


@pytest.mark.parametrize("N", [128, 512, 2048])
def test_mining_launch_parameters_match_the_model(emu, N):
    """perf_model.mining_path's k-splits, candidate splits and GEMM tiles are the grids the host code
    launches (the finalizers' predicted time depends on them)."""
    D = 1536
    path = perf_model.mining_path(N, D)
    with recorded_launches(emu) as launches:
        emu.batch_hard_mine(torch.empty(N, D), torch.arange(N) // 4)
    first = launches[0] if path["path"] != "gemm" else launches[1]
    tiles = -(-N // 32)
    if path["path"] == "splitk":
        assert first.grid == (tiles * tiles, path["ksplits"], 1)
    elif path["path"] == "select":
        assert first.grid == (tiles, path["splits"], 1)
    else:
        assert first.grid == (path["tiles"], path["tiles"], 1)
    assert launches[-1].grid == (2 * N, 1, 1) and launches[-1].block == (32, 1, 1)


def test_recording_and_running_records_the_same_launches_and_computes(emu):
    """Mode 1 runs the kernels as usual (the result is right) and records the launches that mode 2
    records without running them."""
    x = torch.randn(2, 16, 3, 4).contiguous(memory_format=torch.channels_last)
    rect = torch.tensor([1, 0, 1, 4])
    with recorded_launches(emu, RECORD_AND_RUN) as ran:
        out, argmax = emu.drop_pool(x, rect, "max")
    with recorded_launches(emu, RECORD_ONLY) as recorded:
        emu.drop_pool(x, rect, "max")
    assert ran == recorded and len(ran) == 1
    assert perf_model.parse_kernel(ran[0].kernel) == ("drop_pool_channels_kernel", ["float", "4", "true"])
    masked = x.clone()
    masked[:, :, 1] = 0
    torch.testing.assert_close(out, masked.amax(dim=(2, 3)))
    # Nothing is recorded once recording stops.
    emu.drop_pool(x, rect, "max")
    with recorded_launches(emu, RECORD_ONLY) as none:
        pass
    assert none == []


def test_an_undersized_launch_fails_the_model():
    """The model rejects the channels_last pooling launch this audit was written against: one thread
    per (sample, channel vector), 128 blocks of 256 threads for fp16 at 128x2048x24x8."""
    old = perf_model.Launch("void bdb::drop_pool_channels_kernel<c10::Half, 8, true>(...)", (1, 128, 1), (256, 1, 1))
    verdict = perf_model.check_parallelism(old, PAPER_MAP, "H200")
    assert not verdict.ok and verdict.have == 128 * 256 * 16


def test_an_unknown_kernel_must_be_added_to_the_model():
    with pytest.raises(KeyError, match="perf_model.py"):
        perf_model.check_parallelism(perf_model.Launch("void bdb::new_kernel<float>(float*)", (1, 1, 1), (1, 1, 1)), {})
