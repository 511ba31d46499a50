"""Gradients of the drop ops: float64 gradcheck, the reference's gradients, determinism."""

from __future__ import annotations

import pytest
import torch

from bdb_ext import reference
from drop_cases import AVG_TOLERANCE, DTYPES, LAYOUTS, feature_map

RECTS = [[2, 0, 3, 5], [0, 1, 7, 2], [0, 0, 0, 0], [0, 0, 7, 5], [6, 4, 1, 1]]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck_float64(backend, layout):
    x = feature_map((2, 3, 7, 5), torch.float64, backend.device, layout).requires_grad_()
    # The emulator runs every launch on CPU fibers; gradcheck's fast mode (a random projection of
    # the Jacobian instead of every column) keeps it to seconds and still checks the backward.
    fast = backend.is_emulated
    for rect in RECTS:
        assert torch.autograd.gradcheck(lambda t: backend.ops.batch_drop_block(t, rect), (x,), fast_mode=fast)
        # Max pooling is differentiable where the maximum is unique, which random data gives.
        for mode in ("max", "avg"):
            assert torch.autograd.gradcheck(lambda t: backend.ops.drop_pool(t, rect, mode)[0], (x,), fast_mode=fast)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "misaligned"])
def test_gradients_match_reference(backend, dtype, layout):
    x = feature_map((3, 10, 24, 8), dtype, backend.device, layout, seed=3)
    grad = torch.randn(3, 10, generator=torch.Generator().manual_seed(4)).to(backend.device, dtype)
    rect = [16, 0, 8, 8]
    for mode in ("max", "avg"):
        xa = x.detach().requires_grad_()
        backend.ops.drop_pool(xa, rect, mode)[0].backward(grad)
        xr = x.detach().double().requires_grad_()
        reference.drop_pool(xr, rect, mode).backward(grad.double())
        tol = dict(rtol=0, atol=0) if mode == "max" else AVG_TOLERANCE[dtype]
        torch.testing.assert_close(xa.grad, xr.grad.to(dtype), **tol)
        assert xa.grad.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
    xa = x.detach().requires_grad_()
    y = backend.ops.batch_drop_block(xa, rect)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(xa.grad, reference.batch_drop_block(torch.ones_like(x), rect), rtol=0, atol=0)


def test_max_gradient_goes_to_first_kept_maximum_only(backend):
    x = torch.tensor([[[[0.0, 0.0], [-1.0, 0.0]]]], device=backend.device, requires_grad=True)
    backend.ops.drop_pool(x, [0, 0, 1, 1], "max")[0].sum().backward()
    assert x.grad.cpu().flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    x = torch.tensor([[[[-2.0, -1.0]]]], device=backend.device, requires_grad=True)
    backend.ops.drop_pool(x, [0, 1, 1, 1], "max")[0].sum().backward()
    assert x.grad.cpu().flatten().tolist() == [0.0, 0.0]  # the dropped zero won: no gradient


def test_bitwise_deterministic(backend):
    x = feature_map((4, 24, 24, 8), device=backend.device, seed=5)
    grad = torch.randn(4, 24, device=backend.device)
    results = []
    for _ in range(2):
        xa = x.detach().requires_grad_()
        out = backend.ops.drop_pool(xa, [3, 0, 8, 8], "avg")[0]
        out.backward(grad)
        results.append((out, xa.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_double_backward_is_a_clear_error(backend):
    x = feature_map((2, 3, 4, 4), torch.float64, backend.device).requires_grad_()
    out = backend.ops.drop_pool(x, [0, 0, 2, 4], "avg")[0]
    # (out ** 2) makes the incoming gradient depend on x, so a second backward must go through ours.
    (gx,) = torch.autograd.grad((out**2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gx.sum().backward()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_matches_cpu(dtype):
    import bdb_ext

    x = feature_map((8, 64, 24, 8), dtype, "cpu", seed=7)
    rect = [4, 0, 8, 8]
    for mode in ("max", "avg"):
        cpu_out, cpu_arg = bdb_ext.ops.drop_pool(x, rect, mode)
        cuda_out, cuda_arg = bdb_ext.ops.drop_pool(x.cuda(), torch.tensor(rect, device="cuda"), mode)
        tol = dict(rtol=0, atol=0) if mode == "max" else AVG_TOLERANCE[dtype]
        torch.testing.assert_close(cuda_out.cpu(), cpu_out, **tol)
        assert torch.equal(cuda_arg.cpu(), cpu_arg)
