"""The drop ops under torch.library.opcheck and torch.compile(fullgraph=True)."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import bdb_ext
from drop_cases import feature_map


def _sample_inputs(device):
    for layout in ("contiguous", "channels_last"):
        for dtype in (torch.float32, torch.float64):
            x = feature_map((2, 5, 6, 4), dtype, device, layout).requires_grad_()
            yield x, torch.tensor([1, 0, 3, 4], device=device)


def test_opcheck(backend):
    ops = getattr(torch.ops, backend.ops.namespace)
    for x, rect in _sample_inputs(backend.device):
        torch.library.opcheck(ops.batch_drop_block.default, (x, rect))
        torch.library.opcheck(ops._batch_drop_block_backward.default, (x.detach(), rect))
        for mode in ("max", "avg"):
            torch.library.opcheck(ops.drop_pool.default, (x, rect, mode))
            torch.library.opcheck(ops.drop_pool.default, (x, rect, mode, False))
            torch.library.opcheck(ops.drop_pool.default, (x.detach(), rect, mode, False))
            out, argmax = ops.drop_pool(x.detach(), rect, mode)
            cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            torch.library.opcheck(
                ops._drop_pool_backward.default, (torch.randn_like(out), argmax, rect, mode, list(x.shape), cl)
            )


def _rects(count, h, w, device):
    g = torch.Generator().manual_seed(0)
    for _ in range(count):
        rows = int(torch.randint(1, h + 1, (1,), generator=g))
        top = int(torch.randint(0, h - rows + 1, (1,), generator=g))
        yield torch.tensor([top, 0, rows, w], device=device)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_compile_fullgraph_no_recompile_across_rectangles(backend, mode):
    counter = CompileCounterWithBackend("aot_eager")

    @torch.compile(backend=counter, fullgraph=True)
    def step(x, rect):
        pooled = backend.ops.drop_pool(backend.ops.batch_drop_block(x, rect), rect, mode)[0]
        return pooled.square().sum()

    x = feature_map((2, 6, 8, 4), torch.float32, backend.device).requires_grad_()
    for rect in _rects(20, 8, 4, backend.device):
        x.grad = None
        step(x, rect).backward()
        eager = x.detach().requires_grad_()
        backend.ops.drop_pool(backend.ops.batch_drop_block(eager, rect), rect, mode)[0].square().sum().backward()
        torch.testing.assert_close(x.grad, eager.grad)
    assert counter.frame_count == 1


def test_values_only_call_compiles_fullgraph_for_inference(backend):
    """Under no_grad the compiled graph calls the values-only kernel (the fake kernel gives its empty
    argmax); with a gradient the same code compiles to the arg-max call. Both equal eager."""
    x = feature_map((2, 6, 8, 4), torch.float32, backend.device)
    rect = torch.tensor([2, 0, 3, 4], device=backend.device)

    @torch.compile(backend="aot_eager", fullgraph=True)
    def pooled(t):
        return backend.ops.drop_pool(t, rect, "max", return_argmax=False) * 2

    with torch.no_grad():
        torch.testing.assert_close(pooled(x), backend.ops.drop_pool(x, rect, "max")[0] * 2, rtol=0, atol=0)
    xg = x.clone().requires_grad_()
    pooled(xg).sum().backward()
    eager = x.clone().requires_grad_()
    (backend.ops.drop_pool(eager, rect, "max")[0] * 2).sum().backward()
    torch.testing.assert_close(xg.grad, eager.grad, rtol=0, atol=0)


def test_layer_compiles_with_inductor_without_recompiling(device):
    torch._dynamo.reset()
    layer = bdb_ext.BatchDropPool(0.33, 1.0).train()
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(layer, backend=counter, fullgraph=True)
    x = torch.randn(4, 8, 24, 8, device=device, requires_grad=True)
    for _ in range(20):
        compiled(x).sum().backward()
    assert counter.frame_count == 1
    # Every call drew its own rectangle: the gradient covers more than one block of rows.
    assert (x.grad.abs().sum(dim=(0, 1, 3)) > 0).sum() > 16
