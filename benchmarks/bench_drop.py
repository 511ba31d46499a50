"""Batch DropBlock ops: fused kernels against the eager forms they replace and their compiled form.

Variants of each group (one op, pass, upstream-gradient kind, shape, dtype, device), timed
interleaved (bench_utils.interleaved_medians):
- fused: bdb_ext.ops (one kernel forward, one backward);
- reference: the published reference code (full-size ones mask, multiply, AdaptiveMaxPool2d);
- broadcast: the same with a (1, 1, H, W) mask broadcast over N and C;
- compiled: torch.compile (inductor) of the reference form, the rectangle as Python ints.

Upstream gradients for fwd+bwd: "dense" (a random tensor of the output's shape, as a loss over the
output gives) or "stride0" (the expanded, stride-0 tensor that ``y.sum().backward()`` passes, given
directly so that both steps time the same forward).
``extra_info`` holds every variant's median and its ratio to fused; `python benchmarks/summarize.py
results.json` prints them. `python benchmarks/compare_cpu.py` prints the issue-14 table in one go.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import bdb_ext
from bdb_ext import reference
from bench_utils import benchmark_devices, dtype_name, full_size_enabled, record_group, synchronized

PAPER_SHAPE = (128, 2048, 24, 8)  # batch 128, ResNet-50 layer4 at 384x128 input
SMALL_SHAPE = (32, 256, 24, 8)
RECT = [8, 0, 8, 8]  # h_ratio 0.33 of 24 rows, whole width
ROUNDS = 7


def _drop_fused(x, rect):
    return bdb_ext.ops.batch_drop_block(x, rect)


def _pool_fused(x, rect):
    # What BatchDropPool runs: the pooled values only (the argmax is still computed when a gradient needs it).
    return bdb_ext.ops.drop_pool(x, rect, "max", return_argmax=False)


def _pool_reference(x, rect):
    return reference.drop_pool(x, rect, "max")


def _pool_broadcast(x, rect):
    return torch.nn.functional.adaptive_max_pool2d(reference.batch_drop_block_broadcast(x, rect), 1).flatten(1)


VARIANTS = {
    "drop": {"fused": _drop_fused, "reference": reference.batch_drop_block, "broadcast": reference.batch_drop_block_broadcast},
    "drop+maxpool": {"fused": _pool_fused, "reference": _pool_reference, "broadcast": _pool_broadcast},
}


def make_step(fn, x: torch.Tensor, rect, backward: bool, grad_kind: str = "dense") -> Callable[[], object]:
    """One timed step: the forward, or forward and backward with the given upstream gradient."""
    if not backward:
        return lambda: fn(x, rect)
    grad = None

    def step():
        nonlocal grad
        x.grad = None
        y = fn(x, rect)
        if grad is None:
            # "stride0" is the gradient y.sum().backward() hands over (a 0-d one expanded to y's
            # shape), passed directly so the step does not also time the sum's forward.
            grad = torch.ones((), dtype=y.dtype, device=y.device).expand(y.shape) if grad_kind == "stride0" else torch.randn_like(y)
        y.backward(grad)
        return x.grad

    return step


def drop_steps(op: str, backward: bool, grad_kind: str, shape, dtype: torch.dtype, device: str,
               variants=("fused", "reference", "broadcast", "compiled")) -> dict[str, Callable[[], object]]:
    """The steps of one benchmark group, each on its own input (so no variant warms another's cache)."""
    steps = {}
    for variant in variants:
        x = torch.randn(shape, device=device, dtype=dtype, requires_grad=backward)
        if variant == "compiled":
            fn, rect = torch.compile(VARIANTS[op]["reference"]), RECT
        else:
            fn = VARIANTS[op][variant]
            rect = torch.tensor(RECT, device=device) if variant == "fused" else RECT
        steps[variant] = synchronized(make_step(fn, x, rect, backward, grad_kind), device)
    return steps


def _cases():
    for device in benchmark_devices():
        shapes = [SMALL_SHAPE] + ([PAPER_SHAPE] if full_size_enabled(device) else [])
        for shape in shapes:
            for dtype in (torch.float32, torch.bfloat16):
                for backward, grad_kind in ((False, "dense"), (True, "dense"), (True, "stride0")):
                    pass_id = f"fwd+bwd-{grad_kind}" if backward else "fwd"
                    yield pytest.param(device, shape, dtype, backward, grad_kind,
                                       id=f"{device}-{'x'.join(map(str, shape))}-{dtype_name(dtype)}-{pass_id}")


@pytest.mark.parametrize("device, shape, dtype, backward, grad_kind", list(_cases()))
@pytest.mark.parametrize("op", list(VARIANTS))
def test_drop_ops(benchmark, op, device, shape, dtype, backward, grad_kind):
    steps = drop_steps(op, backward, grad_kind, shape, dtype, device)
    pass_name = f"fwd+bwd ({grad_kind} grad)" if backward else "fwd"
    benchmark.group = f"{op} {pass_name} {'x'.join(map(str, shape))} {dtype_name(dtype)} {device}"
    record_group(benchmark, steps, ROUNDS, op=op, backward=backward, grad=grad_kind, shape=list(shape),
                 dtype=dtype_name(dtype), device=device)
