"""Batch-hard mining + soft-margin triplet loss: the fused op against the eager forms it replaces.

Variants (the same loss value on P x K batches):
- fused: bdb_ext.ops.batch_hard_triplet_loss (batch_hard_mine: the lower block triangle of x x^T, or a
  GEMM per row block above N = 1024, + direct-form re-measure on the CPU, tiled kernel on CUDA;
  backward over the 2N chosen pairs);
- reference: the published reference code (addmm distance matrix, N x N masks, SoftMarginLoss);
- mask: the mask form of later re-ID toolkits (fast-reid style multiply-by-mask mining);
- pml: pytorch-metric-learning's BatchHardMiner + TripletMarginLoss(smooth_loss, margin 0)
  (skipped when it is not installed);
- compiled: torch.compile (inductor) of the reference form.

The variants of a group are timed interleaved (bench_utils.interleaved_medians); ``extra_info``
holds every variant's median and its ratio to fused.

Sizes: N = 128, D = 1536 (the BDB feature, the kernels.md target) always; N in {128, 512, 2048} x
D in {1536, 2048} on CUDA and with BDB_BENCH_FULL=1 on the CPU. Batches are P x K with K = 4.
Each case records the peak memory its step allocates (``extra_info["peak_bytes"]``: CUDA allocator
peak, or on the CPU the profiler's running sum of allocations) beside the time. A benchmark measures
and reports; it asserts nothing about time.
"""

from __future__ import annotations

import pytest
import torch

import bdb_ext
from bdb_ext import reference
from bench_utils import benchmark_devices, dtype_name, full_size_enabled, record_group, synchronized

K = 4
ROUNDS = 15
VARIANT_NAMES = ("fused", "reference", "mask", "pml", "compiled")
DEFAULT_SHAPES = [(128, 1536)]
FULL_SHAPES = [(n, d) for n in (128, 512, 2048) for d in (1536, 2048)]


def _cases():
    for device in benchmark_devices():
        shapes = FULL_SHAPES if full_size_enabled(device) else DEFAULT_SHAPES
        for n, d in shapes:
            for dtype in (torch.float32, torch.bfloat16):
                yield pytest.param(device, n, d, dtype, id=f"{device}-N{n}-D{d}-{dtype_name(dtype)}")


def _have_pml() -> bool:
    try:
        import pytorch_metric_learning  # noqa: F401
    except ImportError:
        return False
    return True


def _pml_loss():
    try:
        from pytorch_metric_learning.distances import LpDistance
        from pytorch_metric_learning.losses import TripletMarginLoss
        from pytorch_metric_learning.miners import BatchHardMiner
        from pytorch_metric_learning.reducers import MeanReducer
    except ImportError:
        pytest.skip("pytorch-metric-learning is not installed")
    distance = LpDistance(normalize_embeddings=False)
    miner = BatchHardMiner(distance=distance)
    loss_fn = TripletMarginLoss(margin=0.0, smooth_loss=True, distance=distance, reducer=MeanReducer())
    return lambda x, labels: loss_fn(x, labels, miner(x, labels))


def _variant(name: str):
    if name == "fused":
        return bdb_ext.ops.batch_hard_triplet_loss
    if name == "reference":
        return reference.triplet_loss_reference_code
    if name == "mask":
        return reference.triplet_loss_mask_form
    if name == "pml":
        return _pml_loss()  # skips the test when the package is missing: callers check _have_pml()
    if name == "compiled":
        return torch.compile(reference.triplet_loss_reference_code)
    raise ValueError(name)


def _make_step(fn, x, labels, backward: bool):
    if not backward:

        def forward():
            with torch.no_grad():
                return fn(x, labels)

        return forward

    def step():
        x.grad = None
        fn(x, labels).backward()
        return x.grad

    return step


def peak_bytes(step, device: str) -> int:
    """Peak memory allocated while `step` runs (beyond what was allocated before)."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    current = peak = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def mining_inputs(n: int, d: int, dtype: torch.dtype, device: str, backward: bool, seed: int = 0):
    """(x, labels): a P x K batch (K = 4) of n embeddings in random order."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g).to(device=device, dtype=dtype).requires_grad_(backward)
    labels = torch.arange(n // K).repeat_interleave(K)[torch.randperm(n, generator=g)].to(device)
    return x, labels


def mining_steps(n: int, d: int, dtype: torch.dtype, device: str, backward: bool, variants=VARIANT_NAMES):
    """The steps of one benchmark group, each on its own copy of the same batch."""
    steps = {}
    for variant in variants:
        if variant == "pml" and not _have_pml():
            continue
        x, labels = mining_inputs(n, d, dtype, device, backward)
        steps[variant] = synchronized(_make_step(_variant(variant), x, labels, backward), device)
    return steps


@pytest.mark.parametrize("device, n, d, dtype", list(_cases()))
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
def test_mining_loss(benchmark, backward, device, n, d, dtype):
    steps = mining_steps(n, d, dtype, device, backward)
    benchmark.group = f"mining+soft-margin loss {'fwd+bwd' if backward else 'fwd'} N{n} D{d} {dtype_name(dtype)} {device}"
    peaks = {} if benchmark.disabled else {name: peak_bytes(step, device) for name, step in steps.items()}
    record_group(benchmark, steps, ROUNDS, op="batch_hard_triplet_loss", backward=backward, shape=[n, d],
                 dtype=dtype_name(dtype), device=device, peak_bytes=peaks)
