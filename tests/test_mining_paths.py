"""The CUDA mining kernels' paths, each reached through the op as the host code picks it, on every backend:
split-K at small N, the direct select at medium N, the GEMM form with its error-bound re-measure at N >= 2048
(csrc/cuda/mining_launch.cuh); pairwise_distance's split-K and tile paths; the backward's hub rows (a negative
chosen by most anchors; at N = 4096 its pairs are ordered by the rank and scatter kernels, below 513 by the
grouping block itself) and its device-side index checks; pairwise_distance's backward in full fp32 whatever the
TF32 setting."""

from __future__ import annotations

import pytest
import torch

from bdb_ext import reference
from mining_cases import TOLERANCES, assert_mine_matches, pk_labels

# (N, D) that select each CUDA forward path (mining_launch.cuh): split-K while the 32 x 32 tile pairs are
# fewer than 132 and D spans two 16-element chunks; the direct select beyond; the GEMM form from N = 2048.
PATHS = {
    "split-k": (128, 48),
    "select": (400, 24),
    "gemm": (2048, 8),
}


def _raw_ops(backend):
    """The backend's torch.ops namespace (the internal backward op has no public function in bdb_ext.ops)."""
    return getattr(torch.ops, backend.ops.namespace)


def _randn(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


@pytest.mark.parametrize(
    ("path", "dtype"),
    # bf16 through the GEMM form is in the sanitizer driver (tests/emulation/): the emulator is slow at N = 2048.
    [(p, torch.float32) for p in PATHS] + [("split-k", torch.bfloat16), ("select", torch.bfloat16)],
)
def test_mine_path_matches_reference(backend, path, dtype):
    n, d = PATHS[path]
    x = _randn(n, d, seed=n).to(dtype=dtype, device=backend.device)
    labels = pk_labels(n // 4, 4, backend.device)
    out = backend.ops.batch_hard_mine(x, labels)
    assert_mine_matches(out, x, labels, *TOLERANCES[dtype])
    again = backend.ops.batch_hard_mine(x, labels)
    for a, b in zip(out, again):
        assert torch.equal(a, b), "batch_hard_mine is not bitwise deterministic"


@pytest.mark.parametrize("threads", [1, 3])
def test_cpu_mine_triangle_tasks_any_thread_count(threads):
    """The CPU forward multiplies the lower block triangle of x x^T in 2T blocks paired into T tasks
    (csrc/cpu/mining_cpu.cpp): the picks and distances must not depend on T, including the rows
    whose entries above their block are read from the transposed position."""
    x = _randn(200, 40, seed=3).float()
    x[150] = x[10]  # a cross-block duplicate: a zero distance read through the transposed entry
    labels = pk_labels(50, 4, "cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        out = torch.ops.bdb_ext.batch_hard_mine(x, labels)
        torch.set_num_threads(2)
        two = torch.ops.bdb_ext.batch_hard_mine(x, labels)
    finally:
        torch.set_num_threads(before)
    assert_mine_matches(out, x, labels, *TOLERANCES[torch.float32])
    for a, b in zip(out, two):
        assert torch.equal(a, b), f"{threads} threads and 2 threads disagree"


def test_mine_gemm_path_nan_and_inf_rows(backend):
    """NaN and inf rows make the GEMM bounds NaN: their tiles are re-measured and NaN wins as on the CPU."""
    n, d = PATHS["gemm"]
    x = _randn(n, d, seed=3).float()
    x[5, 2] = float("nan")
    x[1500, 0] = float("inf")
    labels = pk_labels(n // 4, 4)
    want = torch.ops.bdb_ext.batch_hard_mine(x, labels)  # the CPU kernel
    got = backend.ops.batch_hard_mine(x.to(backend.device), labels.to(backend.device))
    for name, w, g in zip(("d_ap", "d_an", "idx_p", "idx_n"), want, got):
        torch.testing.assert_close(g.cpu(), w, rtol=1e-5, atol=1e-6, equal_nan=True, msg=name)
    assert torch.isnan(got[0].cpu()[labels == labels[5]]).all()


def test_mine_gemm_path_near_duplicates(backend):
    """Rows that differ by 1e-4 relative: the GEMM form cannot order them, the re-measure must."""
    n, d = PATHS["gemm"]
    base = _randn(1, d, seed=4, scale=10.0)
    x = (base + _randn(n, d, seed=5, scale=1e-3)).float()
    labels = pk_labels(n // 8, 8)
    out = backend.ops.batch_hard_mine(x.to(backend.device), labels.to(backend.device))
    assert_mine_matches(out, x, labels, *TOLERANCES[torch.float32])


def _mine_backward_float64(grad_ap, grad_an, x, idx_p, idx_n, d_ap, d_an) -> torch.Tensor:
    """dx of sum(grad_ap * d_ap + grad_an * d_an) for the given pairs, in float64 (0 at d = 0 or no pair)."""
    x = x.double()
    rows = torch.arange(x.shape[0])
    dx = torch.zeros_like(x)
    for grad, dist, idx, exists in (
        (grad_ap, d_ap, idx_p, idx_p != rows),
        (grad_an, d_an, idx_n, idx_n >= 0),
    ):
        dist = dist.double()
        w = torch.where(exists & (dist > 0), grad.double() / dist.clamp_min(1e-300), torch.zeros_like(dist))
        other = idx.clamp_min(0)
        diff = (x - x[other]) * w[:, None]
        dx += diff
        dx.index_add_(0, other, -diff)
    return dx


def test_mine_backward_hub(backend):
    """N = 4096 near-identical embeddings around one central row: that row is the hardest negative of almost
    every anchor (a hub of about 4000 pairs; D = 256 so that random offsets are nearly equidistant and the
    centre is nearer than any neighbour), whose gradient CUDA sums in chunks by separate blocks. Checked
    against a float64 gradient of the same pairs; bitwise deterministic."""
    n, d = 4096, 256
    x = _randn(n, d, seed=6, scale=1e-2) + _randn(1, d, seed=7)
    x[0] = _randn(1, d, seed=7)[0]  # the centre
    labels = pk_labels(n // 4, 4)
    x = x.float().to(backend.device)
    labels = labels.to(backend.device)
    d_ap, d_an, idx_p, idx_n = torch.ops.bdb_ext.batch_hard_mine(x.cpu(), labels.cpu())
    hub_pairs = int((idx_n == 0).sum())
    assert hub_pairs > n // 2, f"no hub: row 0 is the negative of only {hub_pairs} anchors"
    g = torch.Generator().manual_seed(8)
    grad_ap = torch.rand(n, generator=g)
    grad_an = -torch.rand(n, generator=g)
    args = [t.to(backend.device) for t in (grad_ap, grad_an, x, idx_p, idx_n, d_ap, d_an)]
    dx = _raw_ops(backend)._batch_hard_mine_backward(*args)
    want = _mine_backward_float64(grad_ap, grad_an, x.cpu(), idx_p, idx_n, d_ap, d_an)
    torch.testing.assert_close(dx.cpu().double(), want, rtol=1e-4, atol=1e-5)
    assert torch.equal(dx, _raw_ops(backend)._batch_hard_mine_backward(*args))


@pytest.mark.parametrize(
    ("n", "m", "d", "squared"),
    # split-K (mining_launch.cuh: fewer tile pairs than SMs and D over two 16-element chunks), also with
    # N != M and partial tiles; the tile kernel (no split: D within one chunk; many tiles).
    [(128, 128, 48, False), (45, 37, 33, True), (64, 20, 16, False), (400, 390, 24, True)],
)
def test_pairwise_distance_paths_match_reference(backend, n, m, d, squared):
    x = _randn(n, d, seed=14).float()
    y = _randn(m, d, seed=15).float()
    got = backend.ops.pairwise_distance(x.to(backend.device), y.to(backend.device), squared)
    want = reference.pairwise_distance(x.double(), y.double(), squared)
    torch.testing.assert_close(got.cpu().double(), want, rtol=1e-5, atol=1e-5)
    assert torch.equal(got, backend.ops.pairwise_distance(x.to(backend.device), y.to(backend.device), squared))


@pytest.mark.parametrize(
    ("which", "value", "message"),
    [("idx_p", 7, "idx_p"), ("idx_p", -1, "idx_p"), ("idx_n", 7, "idx_n"), ("idx_n", -2, "idx_n")],
)
def test_mine_backward_rejects_out_of_range_indices(backend, which, value, message):
    """A bad index is an error naming it (CPU: host check; CUDA: device-side assert), never a wild access."""
    n = 7
    x = _randn(n, 3, seed=9).float().to(backend.device)
    labels = pk_labels(1, n, backend.device)
    d_ap, d_an, idx_p, idx_n = backend.ops.batch_hard_mine(x, labels)
    idx = {"idx_p": idx_p.clone(), "idx_n": idx_n.clone()}
    idx[which][3] = value
    ones = torch.ones_like(d_ap)
    with pytest.raises(RuntimeError, match=message):
        _raw_ops(backend)._batch_hard_mine_backward(ones, ones, x, idx["idx_p"], idx["idx_n"], d_ap, d_an)


def test_mine_backward_accepts_missing_negative(backend):
    """idx_n = -1 (no negative) is valid: that pair gives no gradient."""
    x = _randn(5, 3, seed=10).float().to(backend.device)
    labels = torch.zeros(5, dtype=torch.int64, device=backend.device)  # one identity: no negatives
    d_ap, d_an, idx_p, idx_n = backend.ops.batch_hard_mine(x, labels)
    assert (idx_n == -1).all()
    ones = torch.ones_like(d_ap)
    dx = _raw_ops(backend)._batch_hard_mine_backward(ones, ones, x, idx_p, idx_n, d_ap, d_an)
    want = _mine_backward_float64(ones.cpu(), ones.cpu(), x.cpu(), idx_p.cpu(), idx_n.cpu(), d_ap.cpu(), d_an.cpu())
    torch.testing.assert_close(dx.cpu().double(), want, rtol=1e-5, atol=1e-6)


def test_pairwise_backward_ignores_tf32_setting(backend):
    """The user's reduced-precision matmul settings must not cost pairwise_distance's backward its fp32
    accuracy, and are left as they were. On CUDA the GEMMs run under at::NoTF32Guard, so the gradient is
    bitwise the full-fp32 one. On the CPU (and the emulator, which shares that host code) the guard has no
    effect: oneDNN may take its bf16x3 path under "medium", which stays within the fp32 tolerance checked
    here."""
    x = _randn(64, 256, seed=11).float().to(backend.device).requires_grad_()
    y = _randn(48, 256, seed=12).float().to(backend.device).requires_grad_()
    g = _randn(64, 48, seed=13).float().to(backend.device)

    def grads():
        return torch.autograd.grad((backend.ops.pairwise_distance(x, y) * g).sum(), (x, y))

    full = grads()
    saved = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")  # TF32 (CUDA) / bf16x3 (oneDNN) allowed
        reduced = grads()
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(saved)
    if backend.device.type == "cuda":
        for a, b in zip(full, reduced):
            assert torch.equal(a, b), "a TF32 setting reached the backward's cuBLAS GEMMs"
    xr, yr = x.detach().cpu().double().requires_grad_(), y.detach().cpu().double().requires_grad_()
    want = torch.autograd.grad((reference.pairwise_distance(xr, yr) * g.cpu().double()).sum(), (xr, yr))
    for a, b in zip(reduced, want):
        torch.testing.assert_close(a.cpu().double(), b, rtol=1e-5, atol=1e-6)
