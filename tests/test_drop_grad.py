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


# Losses whose backward hands the op a non-dense gradient: sum() and mean() give an expanded
# (all-stride-0) one, a reduction over H and W gives one value per plane (stride 0 in H and W),
# slicing gives a dense one with zeros, a transposed product a permuted one.
MAP_LOSSES = {
    "sum": lambda y: y.sum(),
    "mean": lambda y: y.mean(),
    "plane_sum": lambda y: (y.sum(dim=(2, 3)) * torch.arange(y.shape[1], dtype=y.dtype, device=y.device)).sum(),
    "slice": lambda y: y[:, 1:, ::2, 1:].sum(),
    "transposed": lambda y: (y.transpose(2, 3) * torch.ones(y.shape[3], y.shape[2], dtype=y.dtype, device=y.device)).sum(),
}
POOL_LOSSES = {
    "sum": lambda o: o.sum(),
    "mean": lambda o: o.mean(),
    "slice": lambda o: o[:, ::2].sum(),
    "column_weights": lambda o: (o * torch.arange(o.shape[1], dtype=o.dtype, device=o.device)).sum(),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("loss", list(MAP_LOSSES))
def test_drop_block_backward_of_strided_gradients(backend, dtype, layout, loss):
    x = feature_map((3, 6, 7, 5), dtype, backend.device, layout, seed=6)
    for rect in ([2, 1, 3, 2], [0, 0, 7, 5], [0, 0, 0, 0]):
        xa = x.detach().requires_grad_()
        MAP_LOSSES[loss](backend.ops.batch_drop_block(xa, rect)).backward()
        xr = x.detach().requires_grad_()
        MAP_LOSSES[loss](reference.batch_drop_block(xr, rect)).backward()
        torch.testing.assert_close(xa.grad, xr.grad, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("loss", list(POOL_LOSSES))
def test_drop_pool_backward_of_strided_gradients(backend, dtype, layout, loss):
    x = feature_map((3, 6, 7, 5), dtype, backend.device, layout, seed=7)
    for mode in ("max", "avg"):
        for rect in ([2, 1, 3, 2], [0, 0, 0, 0]):
            xa = x.detach().requires_grad_()
            POOL_LOSSES[loss](backend.ops.drop_pool(xa, rect, mode)[0]).backward()
            xr = x.detach().requires_grad_()
            POOL_LOSSES[loss](reference.drop_pool(xr, rect, mode)).backward()
            tol = dict(rtol=0, atol=0) if mode == "max" else AVG_TOLERANCE[dtype]
            torch.testing.assert_close(xa.grad, xr.grad, **tol)


def _copies_in(fn) -> list[str]:
    """The ATen ops that copy or materialise a tensor while fn runs."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return [e.name for e in prof.events() if e.name in ("aten::copy_", "aten::clone", "aten::contiguous")]


def test_cpu_backward_reads_expanded_gradients_in_place():
    """An expanded gradient is read through its strides, never materialised (a copy the size of the
    map would make the stride-0 case slower than the dense one)."""
    rect = torch.tensor([2, 0, 3, 5])
    for grad_y in (torch.tensor(2.0).expand(4, 8, 7, 5), torch.randn(4, 8, 1, 1).expand(4, 8, 7, 5)):
        dense = torch.ops.bdb_ext._batch_drop_block_backward(grad_y.contiguous(), rect)
        assert _copies_in(lambda: torch.ops.bdb_ext._batch_drop_block_backward(grad_y, rect)) == []
        torch.testing.assert_close(torch.ops.bdb_ext._batch_drop_block_backward(grad_y, rect), dense, rtol=0, atol=0)
    x = torch.randn(4, 8, 7, 5)
    for mode in ("max", "avg"):
        _, argmax = torch.ops.bdb_ext.drop_pool(x, rect, mode)
        grad_out = torch.tensor(3.0).expand(4, 8)
        call = lambda g: torch.ops.bdb_ext._drop_pool_backward(g, argmax, rect, mode, [4, 8, 7, 5], False)  # noqa: E731
        assert _copies_in(lambda: call(grad_out)) == []
        torch.testing.assert_close(call(grad_out), call(grad_out.contiguous()), rtol=0, atol=0)


def test_values_only_call_still_differentiates(backend):
    """return_argmax=False spares the argmax only where nothing is recorded: a call that needs a
    derivative (backward, forward AD, torch.func) still computes it, and the raw op then returns it."""
    x = feature_map((2, 6, 7, 5), torch.float64, backend.device)
    rect = [2, 0, 3, 5]
    grad = torch.randn(2, 6, dtype=torch.float64, device=backend.device)
    want = torch.autograd.grad(backend.ops.drop_pool(x.requires_grad_(), rect, "max")[0], x, grad)[0]
    got = torch.autograd.grad(backend.ops.drop_pool(x, rect, "max", return_argmax=False), x, grad)[0]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    _, raw_argmax = backend.raw_ops.drop_pool(x, torch.tensor(rect, device=backend.device), "max", False)
    assert raw_argmax.shape == (2, 6)
    assert torch.autograd.gradcheck(lambda t: backend.ops.drop_pool(t, rect, "max", return_argmax=False), (x,))
    tangent = torch.randn_like(x)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(x.detach(), tangent)
        out = backend.ops.drop_pool(dual, rect, "max", return_argmax=False)
        got_tangent = torch.autograd.forward_ad.unpack_dual(out).tangent
    _, want_tangent = torch.func.jvp(lambda t: backend.ops.drop_pool(t, rect, "max")[0], (x.detach(),), (tangent,))
    torch.testing.assert_close(got_tangent, want_tangent, rtol=0, atol=0)
    func_grad = torch.func.grad(lambda t: backend.ops.drop_pool(t, rect, "max", return_argmax=False).sum())(x.detach())
    torch.testing.assert_close(func_grad, torch.autograd.grad(backend.ops.drop_pool(x, rect, "max")[0].sum(), x)[0])


def test_return_argmax_must_be_a_bool(backend):
    x = torch.randn(1, 2, 3, 3, device=backend.device)
    with pytest.raises(TypeError, match="return_argmax must be a bool, got str"):
        backend.ops.drop_pool(x, [0, 0, 1, 1], "max", return_argmax="no")
