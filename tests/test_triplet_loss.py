"""batch_hard_triplet_loss and BatchHardTripletLoss against the eager references (our semantics, the
reference code's, the mask form) and an independent implementation (pytorch-metric-learning)."""

from __future__ import annotations

import math

import pytest
import torch

import bdb_ext
from bdb_ext.losses import BDBLoss
from bdb_ext import reference
from mining_cases import pk_labels, ragged_labels


def _randn(n: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize(("margin", "reduction"), [(None, "mean"), (0.3, "mean"), (None, "sum"), (0.3, "none")])
def test_loss_matches_reference(backend, margin, reduction):
    x = _randn(30, 10, seed=0).to(backend.device).requires_grad_()
    labels = ragged_labels(30, seed=1, device=backend.device)
    loss = backend.ops.batch_hard_triplet_loss(x, labels, margin, reduction)
    xr = x.detach().cpu().requires_grad_()
    ref = reference.batch_hard_triplet_loss(xr, labels.cpu(), margin, reduction)
    torch.testing.assert_close(loss.cpu(), ref)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    (grad_ref,) = torch.autograd.grad(ref.sum(), xr)
    torch.testing.assert_close(grad.cpu(), grad_ref)


def test_loss_without_any_negative_is_zero_and_attached(backend):
    x = _randn(5, 4, seed=2).to(backend.device).requires_grad_()
    labels = torch.full((5,), 7, dtype=torch.int64, device=backend.device)
    for margin in (None, 0.3):
        loss = backend.ops.batch_hard_triplet_loss(x, labels, margin)
        assert loss.item() == 0 and loss.requires_grad
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.equal(grad, torch.zeros_like(grad))
    empty = torch.empty(0, 4, dtype=torch.float64, device=backend.device, requires_grad=True)
    loss = backend.ops.batch_hard_triplet_loss(empty, labels[:0])
    assert loss.item() == 0 and loss.requires_grad


def test_loss_equals_reference_code_on_pk_batches():
    # With K >= 2 samples per identity and distinct embeddings, the reference code's loss (self
    # counted as a positive, all anchors averaged) is the same number.
    x = _randn(32, 16, seed=3, dtype=torch.float32)
    labels = pk_labels(8, 4)
    for margin in (None, 0.3):
        ours = bdb_ext.ops.batch_hard_triplet_loss(x, labels, margin)
        torch.testing.assert_close(ours, reference.triplet_loss_reference_code(x, labels, margin))
        torch.testing.assert_close(ours, reference.triplet_loss_mask_form(x, labels, margin))


def test_loss_gradient_equals_reference_code():
    x = _randn(24, 12, seed=4).requires_grad_()
    labels = pk_labels(6, 4)
    (ours,) = torch.autograd.grad(bdb_ext.ops.batch_hard_triplet_loss(x, labels), x)
    (theirs,) = torch.autograd.grad(reference.triplet_loss_reference_code(x, labels), x)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("margin", [None, 0.2])
def test_loss_matches_pytorch_metric_learning(margin):
    # A hard dependency of the test extra: a missing install must fail, not skip.
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner
    from pytorch_metric_learning.reducers import MeanReducer

    x = _randn(48, 20, seed=5).requires_grad_()
    labels = pk_labels(12, 4)
    distance = LpDistance(normalize_embeddings=False)
    miner = BatchHardMiner(distance=distance)
    loss_fn = TripletMarginLoss(
        margin=0.0 if margin is None else margin,
        smooth_loss=margin is None,
        distance=distance,
        reducer=MeanReducer(),
    )
    theirs = loss_fn(x, labels, miner(x, labels))
    ours = bdb_ext.ops.batch_hard_triplet_loss(x, labels, margin)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-8)
    (g_ours,) = torch.autograd.grad(ours, x)
    (g_theirs,) = torch.autograd.grad(theirs, x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-8)


def test_module():
    x = _randn(16, 8, seed=6, dtype=torch.float32).requires_grad_()
    labels = pk_labels(4, 4)
    module = bdb_ext.BatchHardTripletLoss()
    assert "margin=None" in repr(module)
    torch.testing.assert_close(module(x, labels), bdb_ext.ops.batch_hard_triplet_loss(x, labels))
    hard = bdb_ext.BatchHardTripletLoss(margin=0.3, reduction="none")
    assert hard(x, labels).shape == (16,)
    module(x, labels).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("margin", [math.inf, -math.inf, math.nan, -0.1])
@pytest.mark.parametrize("make", [bdb_ext.BatchHardTripletLoss, BDBLoss])
def test_bad_margin_rejected_alike_by_both_losses_and_the_op(margin, make):
    with pytest.raises(ValueError, match=r"margin must be a finite float >= 0"):
        make(margin=margin)
    with pytest.raises(ValueError, match=r"margin must be a finite float >= 0"):
        bdb_ext.ops.batch_hard_triplet_loss(torch.randn(4, 2), torch.zeros(4, dtype=torch.int64), margin)


@pytest.mark.parametrize("make", [bdb_ext.BatchHardTripletLoss, BDBLoss])
def test_zero_margin_is_the_plain_hard_margin(make):
    # margin=0 is a legal hard-margin triplet loss: max(0, d_ap - d_an), as the reference computes it.
    assert make(margin=0).margin == 0.0
    x, labels = torch.randn(8, 5, dtype=torch.float64), torch.arange(8) // 2
    torch.testing.assert_close(bdb_ext.ops.batch_hard_triplet_loss(x, labels, 0),
                               reference.batch_hard_triplet_loss(x, labels, 0.0))


def test_bad_margin_and_reduction_rejected():
    for make in (bdb_ext.BatchHardTripletLoss, BDBLoss):
        with pytest.raises(TypeError, match="margin must be a finite float >= 0 or None"):
            make(margin="0.3")
    with pytest.raises(ValueError, match="reduction must be one of"):
        bdb_ext.BatchHardTripletLoss(reduction="batchmean")
