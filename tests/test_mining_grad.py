"""Gradients of pairwise_distance and batch_hard_mine: gradcheck, agreement with the eager reference's
autograd, finiteness at zero distance, and the op registrations (opcheck, torch.compile)."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import bdb_ext
from bdb_ext import reference
from mining_cases import pk_labels, ragged_labels


def _randn(n: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _mine_weighted(ops, x, labels, w_p, w_n):
    d_ap, d_an, _, idx_n = ops.batch_hard_mine(x, labels)
    return (d_ap * w_p).sum() + torch.where(idx_n >= 0, d_an, torch.zeros_like(d_an)).mul(w_n).sum()


def test_mine_backward_matches_reference(backend):
    x = _randn(34, 13, seed=0).to(backend.device).requires_grad_()
    labels = ragged_labels(34, seed=1, device=backend.device)
    w_p = _randn(34, 1, seed=2).flatten().to(backend.device)
    w_n = _randn(34, 1, seed=3).flatten().to(backend.device)
    (grad,) = torch.autograd.grad(_mine_weighted(backend.ops, x, labels, w_p, w_n), x)
    xr = x.detach().cpu().requires_grad_()
    d_ap, d_an, _, idx_n = reference.batch_hard_mine(xr, labels.cpu())
    loss = (d_ap * w_p.cpu()).sum() + torch.where(idx_n >= 0, d_an, torch.zeros_like(d_an)).mul(w_n.cpu()).sum()
    (grad_ref,) = torch.autograd.grad(loss, xr)
    torch.testing.assert_close(grad.cpu(), grad_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_mine_backward_low_precision(backend, dtype):
    x = _randn(24, 16, seed=4).to(dtype=dtype, device=backend.device).requires_grad_()
    labels = pk_labels(6, 4, backend.device)
    (grad,) = torch.autograd.grad(backend.ops.batch_hard_triplet_loss(x, labels), x)
    assert grad.dtype == dtype
    xr = x.detach().cpu().double().requires_grad_()
    (grad_ref,) = torch.autograd.grad(reference.batch_hard_triplet_loss(xr, labels.cpu()), xr)
    tol = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 4e-2}[dtype]
    torch.testing.assert_close(grad.cpu().double(), grad_ref, rtol=tol, atol=tol)


def test_mine_gradient_finite_for_repeated_embeddings(backend):
    row = _randn(1, 8, seed=5)
    x = row.repeat(6, 1).to(backend.device).requires_grad_()
    labels = torch.tensor([0, 0, 0, 1, 1, 2], device=backend.device)
    d_ap, d_an, _, _ = backend.ops.batch_hard_mine(x, labels)
    assert torch.equal(d_ap.detach().cpu(), torch.zeros(6, dtype=torch.float64))
    (grad,) = torch.autograd.grad(d_ap.sum() + d_an.sum(), x)
    assert torch.isfinite(grad).all() and torch.equal(grad.cpu(), torch.zeros_like(grad.cpu()))


def test_pairwise_backward_matches_reference(backend):
    x = _randn(15, 7, seed=6).to(backend.device).requires_grad_()
    y = _randn(11, 7, seed=7).to(backend.device).requires_grad_()
    g = _randn(15, 11, seed=8).to(backend.device)
    for squared in (False, True):
        gx, gy = torch.autograd.grad((backend.ops.pairwise_distance(x, y, squared=squared) * g).sum(), (x, y))
        xr, yr = x.detach().cpu().requires_grad_(), y.detach().cpu().requires_grad_()
        rx, ry = torch.autograd.grad((reference.pairwise_distance(xr, yr, squared=squared) * g.cpu()).sum(), (xr, yr))
        torch.testing.assert_close(gx.cpu(), rx)
        torch.testing.assert_close(gy.cpu(), ry)


def test_pairwise_gradient_zero_at_zero_distance(backend):
    x = _randn(4, 5, seed=9).to(backend.device).requires_grad_()
    (grad,) = torch.autograd.grad(backend.ops.pairwise_distance(x, x).sum(), x)  # diagonal d = 0
    assert torch.isfinite(grad).all()
    xr = x.detach().cpu().requires_grad_()
    (ref,) = torch.autograd.grad(torch.cdist(xr, xr).sum(), xr)
    torch.testing.assert_close(grad.cpu(), ref)


# --- gradcheck (CPU, float64), opcheck and torch.compile -----------------------------------------------------


@pytest.mark.parametrize("contiguous", [True, False])
def test_gradcheck_batch_hard_mine(contiguous):
    x = _randn(18, 12, seed=10)
    if not contiguous:
        x = _randn(18, 24, seed=10)[:, ::2]
    x.requires_grad_()
    labels = ragged_labels(18, seed=11)

    def f(x):
        d_ap, d_an, _, idx_n = bdb_ext.ops.batch_hard_mine(x, labels)
        return d_ap, torch.where(idx_n >= 0, d_an, torch.zeros_like(d_an))

    assert torch.autograd.gradcheck(f, (x,))


@pytest.mark.parametrize("squared", [False, True])
def test_gradcheck_pairwise_distance(squared):
    x = _randn(9, 6, seed=12).requires_grad_()
    y = _randn(30, 12, seed=13)[::3, ::2].requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: bdb_ext.ops.pairwise_distance(x, y, squared), (x, y))


@pytest.mark.parametrize("margin", [None, 0.3])
def test_gradcheck_triplet_loss(margin):
    x = _randn(16, 8, seed=14).requires_grad_()
    labels = pk_labels(4, 4)
    assert torch.autograd.gradcheck(lambda x: bdb_ext.ops.batch_hard_triplet_loss(x, labels, margin), (x,))


def test_opcheck_batch_hard_mine(backend):
    ops = getattr(torch.ops, backend.ops.namespace)
    x = _randn(20, 9, seed=15, dtype=torch.float32).to(backend.device).requires_grad_()
    labels = ragged_labels(20, seed=16, device=backend.device)
    torch.library.opcheck(ops.batch_hard_mine.default, (x, labels))
    torch.library.opcheck(ops.batch_hard_mine.default, (x.detach().double(), labels))


def test_opcheck_pairwise_distance(backend):
    ops = getattr(torch.ops, backend.ops.namespace)
    x = _randn(7, 5, seed=17, dtype=torch.float32).to(backend.device).requires_grad_()
    y = _randn(6, 5, seed=18, dtype=torch.float32).to(backend.device).requires_grad_()
    for squared in (False, True):
        torch.library.opcheck(ops.pairwise_distance.default, (x, y, squared))


def test_opcheck_backward_ops(backend):
    ops = getattr(torch.ops, backend.ops.namespace)
    x = _randn(10, 4, seed=19, dtype=torch.float32).to(backend.device)
    labels = pk_labels(5, 2, backend.device)
    d_ap, d_an, idx_p, idx_n = ops.batch_hard_mine(x, labels)
    g = torch.ones_like(d_ap)
    torch.library.opcheck(ops._batch_hard_mine_backward.default, (g, g, x, idx_p, idx_n, d_ap, d_an))
    y = x[:3].clone()
    dist = ops.pairwise_distance(x, y, False)
    torch.library.opcheck(ops._pairwise_distance_backward.default, (torch.ones_like(dist), x, y, dist, False))


@pytest.mark.parametrize("margin", [None, 0.3])
def test_compile_fullgraph_loss_no_recompile(backend, margin):
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")

    @torch.compile(backend=counter, fullgraph=True)
    def step(x, labels):
        return backend.ops.batch_hard_triplet_loss(x, labels, margin)

    for seed in range(3):
        x = _randn(16, 6, seed=20 + seed, dtype=torch.float32).to(backend.device).requires_grad_()
        labels = ragged_labels(16, seed=seed, device=backend.device)
        step(x, labels).backward()
        eager = x.detach().requires_grad_()
        loss = backend.ops.batch_hard_triplet_loss(eager, labels, margin)
        loss.backward()
        torch.testing.assert_close(x.grad, eager.grad)
    assert counter.frame_count == 1
