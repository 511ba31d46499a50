"""Property tests of the CPU batch_hard_mine / triplet loss against the eager reference (hypothesis):
ragged identities, singletons, one identity, all distinct, repeated embeddings, tiny and huge norms."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bdb_ext
from bdb_ext import reference
from mining_cases import TOLERANCES, assert_mine_matches


@st.composite
def batches(draw):
    n = draw(st.integers(0, 300))
    d = draw(st.integers(1, 12))
    structure = draw(st.sampled_from(["ragged", "one-identity", "all-distinct", "pairs"]))
    if structure == "ragged":
        sizes = draw(st.lists(st.integers(1, 7), min_size=1, max_size=n + 1))
        labels = [i for i, k in enumerate(sizes) for _ in range(k)]
        labels = (labels * (n // max(len(labels), 1) + 1))[:n]
    elif structure == "one-identity":
        labels = [3] * n
    elif structure == "all-distinct":
        labels = list(range(n))
    else:
        labels = [i // 2 for i in range(n)]
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    kind = draw(st.sampled_from(["normal", "repeated", "integers"]))
    if kind == "normal":
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
    elif kind == "repeated":  # few distinct rows: exact ties everywhere
        rows = torch.randn(max(1, n // 5), d, generator=g, dtype=torch.float64)
        x = rows[torch.randint(0, rows.shape[0], (n,), generator=g)] if n else rows[:0]
    else:  # small integers: many exactly equal distances between different rows
        x = torch.randint(-2, 3, (n, d), generator=g).double()
    scale = draw(st.sampled_from([1e-6, 1.0, 1e6]))
    perm = torch.randperm(n, generator=g)
    labels_t = torch.tensor(labels, dtype=torch.int64)[perm] if n else torch.empty(0, dtype=torch.int64)
    return x * scale, labels_t * draw(st.sampled_from([1, -1, 10**12]))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.sampled_from([torch.float32, torch.float64]))
def test_mine_matches_reference(batch, dtype):
    x64, labels = batch
    x = x64.to(dtype)
    scale = float(x64.abs().max()) if x64.numel() else 1.0
    rtol, atol = TOLERANCES[dtype]
    assert_mine_matches(bdb_ext.ops.batch_hard_mine(x, labels), x, labels, rtol, atol * max(scale, 1e-30))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.sampled_from([None, 0.3]))
def test_loss_matches_reference(batch, margin):
    x, labels = batch
    x = x.requires_grad_()
    loss = bdb_ext.ops.batch_hard_triplet_loss(x, labels, margin)
    xr = x.detach().requires_grad_()
    ref = reference.batch_hard_triplet_loss(xr, labels, margin)
    torch.testing.assert_close(loss, ref, rtol=1e-9, atol=1e-12)
    assert loss.requires_grad
    (grad,) = torch.autograd.grad(loss, x)
    (grad_ref,) = torch.autograd.grad(ref, xr)
    assert torch.isfinite(grad).all()
    ours = bdb_ext.ops.batch_hard_mine(x.detach(), labels)
    theirs = reference.batch_hard_mine(x.detach(), labels)
    if x.numel() and torch.equal(ours[2], theirs[2]) and torch.equal(ours[3], theirs[3]):
        # Same chosen pairs (exact ties pick the same index; near-ties within rounding may not):
        # the gradients agree.
        scale = float(grad_ref.abs().max().clamp(min=1))
        torch.testing.assert_close(grad, grad_ref, rtol=1e-7, atol=1e-9 * scale)
