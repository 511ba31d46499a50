"""Batch DropBlock ops: fused kernels against the eager forms they replace.

Variants:
- fused: bdb_ext.ops (one kernel forward, one backward);
- reference: the published reference code (full-size ones mask, multiply, AdaptiveMaxPool2d);
- broadcast: the same with a (1, 1, H, W) mask broadcast over N and C;
- compiled: torch.compile (inductor) of the reference form.

Each benchmark group holds the four variants of one (op, pass, shape, dtype, device); the
``extra_info`` records everything needed to write a ratio down. `python benchmarks/summarize.py
results.json` prints the ratios against the reference.
"""

from __future__ import annotations

import pytest
import torch

import bdb_ext
from bdb_ext import reference
from bench_utils import benchmark_devices, full_size_enabled, synchronized

PAPER_SHAPE = (128, 2048, 24, 8)  # batch 128, ResNet-50 layer4 at 384x128 input
SMALL_SHAPE = (32, 256, 24, 8)
RECT = [8, 0, 8, 8]  # h_ratio 0.33 of 24 rows, whole width


def _cases():
    for device in benchmark_devices():
        dtypes = [torch.float32] + ([torch.float16, torch.bfloat16] if device == "cuda" else [])
        shapes = [SMALL_SHAPE] + ([PAPER_SHAPE] if full_size_enabled(device) else [])
        for shape in shapes:
            for dtype in dtypes:
                yield pytest.param(device, shape, dtype, id=f"{device}-{'x'.join(map(str, shape))}-{str(dtype)[6:]}")


def _drop_fused(x, rect):
    return bdb_ext.ops.batch_drop_block(x, rect)


def _pool_fused(x, rect):
    return bdb_ext.ops.drop_pool(x, rect, "max")[0]


def _pool_reference(x, rect):
    return reference.drop_pool(x, rect, "max")


def _pool_broadcast(x, rect):
    return torch.nn.functional.adaptive_max_pool2d(reference.batch_drop_block_broadcast(x, rect), 1).flatten(1)


VARIANTS = {
    "drop": {"fused": _drop_fused, "reference": reference.batch_drop_block, "broadcast": reference.batch_drop_block_broadcast},
    "drop+maxpool": {"fused": _pool_fused, "reference": _pool_reference, "broadcast": _pool_broadcast},
}


def _make_step(fn, x, rect, backward: bool):
    if not backward:
        return lambda: fn(x, rect)
    grad = None

    def step():
        nonlocal grad
        x.grad = None
        y = fn(x, rect)
        if grad is None:
            grad = torch.randn_like(y)
        y.backward(grad)
        return x.grad

    return step


@pytest.mark.parametrize("device, shape, dtype", _cases())
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("op", list(VARIANTS))
@pytest.mark.parametrize("variant", ["fused", "reference", "broadcast", "compiled"])
def test_drop_ops(benchmark, op, variant, backward, device, shape, dtype):
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=backward)
    if variant == "compiled":
        # The reference form with its rectangle as Python ints, as the reference code has it.
        fn = torch.compile(VARIANTS[op]["reference"])
        rect = RECT
    else:
        fn = VARIANTS[op][variant]
        rect = torch.tensor(RECT, device=device) if variant == "fused" else RECT
    step = synchronized(_make_step(fn, x, rect, backward), device)
    step()  # warm-up (and compilation) outside the timing
    benchmark.group = f"{op} {'fwd+bwd' if backward else 'fwd'} {'x'.join(map(str, shape))} {str(dtype)[6:]} {device}"
    benchmark.extra_info.update(
        op=op, variant=variant, backward=backward, shape=list(shape), dtype=str(dtype), device=device,
        torch=torch.__version__, threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name() if device == "cuda" else None,
    )
    benchmark(step)
