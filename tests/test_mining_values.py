"""pairwise_distance and batch_hard_mine on every backend against the float64 eager reference.

Shapes stay small: the cuda-emulated backend runs every CUDA thread as an OS thread.
"""

from __future__ import annotations

import pytest
import torch

from bdb_ext import reference
from mining_cases import TOLERANCES, assert_mine_matches, pk_labels, ragged_labels

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def _randn(n: int, d: int, dtype: torch.dtype, device: torch.device, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) * scale).to(dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mine_random_batch(backend, dtype):
    x = _randn(40, 20, dtype, backend.device)
    labels = ragged_labels(40, seed=1, device=backend.device)
    out = backend.ops.batch_hard_mine(x, labels)
    assert all(t.device == x.device for t in out)
    assert_mine_matches(out, x, labels, *TOLERANCES[dtype])


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(lambda n, dev: pk_labels(n // 4, 4, dev), id="pk"),
        pytest.param(lambda n, dev: torch.zeros(n, dtype=torch.int64, device=dev), id="one-identity"),
        pytest.param(lambda n, dev: torch.arange(n, device=dev) * -3, id="all-distinct"),
        pytest.param(lambda n, dev: ragged_labels(n, seed=5, device=dev), id="ragged"),
    ],
)
def test_mine_label_structures(backend, labels):
    x = _randn(36, 17, torch.float32, backend.device, seed=2)
    lab = labels(36, backend.device)
    out = backend.ops.batch_hard_mine(x, lab)
    assert_mine_matches(out, x, lab, *TOLERANCES[torch.float32])
    d_ap, d_an, idx_p, idx_n = out
    rows = torch.arange(36, device=backend.device)
    if lab.unique().numel() == 36:  # nobody has a positive
        assert torch.equal(idx_p, rows) and torch.equal(d_ap, torch.zeros_like(d_ap))
    if lab.unique().numel() == 1:  # nobody has a negative
        assert torch.equal(idx_n, torch.full_like(idx_n, -1)) and torch.isinf(d_an).all()


@pytest.mark.parametrize("n", [0, 1, 2, 33])
def test_mine_edge_sizes(backend, n):
    x = _randn(n, 5, torch.float32, backend.device, seed=n)
    labels = torch.arange(n, device=backend.device) % 2
    out = backend.ops.batch_hard_mine(x, labels)
    assert_mine_matches(out, x, labels, *TOLERANCES[torch.float32])


def test_mine_zero_dim_embeddings(backend):
    x = torch.empty(5, 0, device=backend.device)
    labels = torch.tensor([0, 0, 1, 1, 2], device=backend.device)
    d_ap, d_an, idx_p, idx_n = backend.ops.batch_hard_mine(x, labels)
    assert torch.equal(d_ap.cpu(), torch.zeros(5)) and torch.equal(d_an.cpu(), torch.zeros(5))
    # All distances tie at 0: the smallest index wins.
    assert idx_p.tolist() == [1, 0, 3, 2, 4]
    assert idx_n.tolist() == [2, 2, 0, 0, 0]


def test_mine_exact_duplicates_tie_to_smallest_index(backend):
    base = _randn(6, 9, torch.float32, backend.device, seed=3)
    # Rows 1, 4 and 7 are copies of the same vector; 2 and 5 too.
    x = torch.stack([base[0], base[1], base[2], base[3], base[1], base[2], base[4], base[1], base[5]])
    labels = torch.tensor([0, 1, 0, 1, 0, 0, 1, 1, 2], device=backend.device)
    d_ap, d_an, idx_p, idx_n = backend.ops.batch_hard_mine(x, labels)
    assert_mine_matches((d_ap, d_an, idx_p, idx_n), x, labels, *TOLERANCES[torch.float32])
    ref = reference.batch_hard_mine(x.cpu().double(), labels.cpu())
    # Ties between exact copies are exact in any summation order: the indices must match exactly.
    assert idx_p.cpu().tolist() == ref[2].tolist()
    assert idx_n.cpu().tolist() == ref[3].tolist()


def test_mine_near_duplicates_direct_form(backend):
    # Near-duplicates of large vectors: |a|^2 + |b|^2 - 2ab cancels to noise in fp32; the direct form
    # keeps 1e-5 relative accuracy.
    base = _randn(1, 24, torch.float64, torch.device("cpu"), seed=4, scale=100.0)
    noise = _randn(12, 24, torch.float64, torch.device("cpu"), seed=5, scale=1e-3)
    x = (base + noise).float().to(backend.device)
    labels = torch.tensor([0, 1] * 6, device=backend.device)
    out = backend.ops.batch_hard_mine(x, labels)
    assert_mine_matches(out, x, labels, *TOLERANCES[torch.float32])


@pytest.mark.parametrize("scale", [1e-8, 1e6])
def test_mine_tiny_and_huge_norms(backend, scale):
    x = _randn(20, 11, torch.float32, backend.device, seed=6, scale=scale)
    labels = ragged_labels(20, seed=7, device=backend.device)
    rtol, _ = TOLERANCES[torch.float32]
    assert_mine_matches(backend.ops.batch_hard_mine(x, labels), x, labels, rtol, 1e-6 * scale)


def test_mine_non_contiguous_input(backend):
    x = _randn(30, 40, torch.float32, backend.device, seed=8)[:, ::2]
    labels = ragged_labels(30, seed=9, device=backend.device)
    assert not x.is_contiguous()
    assert_mine_matches(backend.ops.batch_hard_mine(x, labels), x, labels, *TOLERANCES[torch.float32])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("squared", [False, True])
def test_pairwise_distance(backend, dtype, squared):
    x = _randn(37, 19, dtype, backend.device, seed=10)
    y = _randn(29, 19, dtype, backend.device, seed=11)
    y[3] = x[5]  # a zero distance
    out = backend.ops.pairwise_distance(x, y, squared=squared)
    assert out.shape == (37, 29) and out.dtype == dtype and out.device == x.device
    ref = reference.pairwise_distance(x.cpu().double(), y.cpu().double(), squared=squared)
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(out.cpu().double(), ref, rtol=rtol, atol=atol)
    assert out[5, 3].item() == 0


def test_pairwise_distance_near_duplicates(backend):
    base = _randn(1, 32, torch.float64, torch.device("cpu"), seed=12, scale=1000.0)
    x = base + _randn(9, 32, torch.float64, torch.device("cpu"), seed=13, scale=1e-2)
    out = backend.ops.pairwise_distance(x.float().to(backend.device))
    ref = reference.pairwise_distance(x.float().double(), x.float().double())
    torch.testing.assert_close(out.cpu().double(), ref, rtol=1e-5, atol=1e-6)


def test_pairwise_distance_empty(backend):
    x = torch.empty(0, 4, device=backend.device)
    y = _randn(3, 4, torch.float32, backend.device)
    assert backend.ops.pairwise_distance(x, y).shape == (0, 3)
    assert backend.ops.pairwise_distance(y, x).shape == (3, 0)


def test_mine_is_deterministic(backend):
    x = _randn(45, 21, torch.float32, backend.device, seed=14).requires_grad_()
    labels = ragged_labels(45, seed=15, device=backend.device)
    runs = []
    for _ in range(2):
        out = backend.ops.batch_hard_mine(x, labels)
        (grad,) = torch.autograd.grad(out[0].sum() * 0.7 - out[1][out[3] >= 0].sum(), x)
        runs.append([t.detach().cpu() for t in out] + [grad.cpu()])
    for a, b in zip(*runs):
        assert torch.equal(a, b)
