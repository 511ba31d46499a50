"""Batches and checks shared by the mining tests (tests/test_mining_*.py, tests/test_triplet_*.py)."""

from __future__ import annotations

import torch

from bdb_ext import reference

# fp32 distances must be within 1e-5 relative (1e-6 absolute) of a float64 reference (kernels.md);
# fp16/bf16 are rounded to their own precision at the end.
TOLERANCES = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.float16: (2e-3, 1e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}


def pk_labels(p: int, k: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """P identities x K samples each, shuffled."""
    g = torch.Generator().manual_seed(p * 1000 + k)
    labels = torch.arange(p).repeat_interleave(k)
    return labels[torch.randperm(p * k, generator=g)].to(device)


def ragged_labels(n: int, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Identities with 1 to 5 samples each (some singletons), arbitrary int64 values."""
    g = torch.Generator().manual_seed(seed)
    out: list[int] = []
    ident = -7
    while len(out) < n:
        k = int(torch.randint(1, 6, (1,), generator=g))
        out += [ident * 1_000_003] * k
        ident += 1
    labels = torch.tensor(out[:n], dtype=torch.int64)
    return labels[torch.randperm(n, generator=g)].to(device)


def assert_mine_matches(out, x: torch.Tensor, labels: torch.Tensor, rtol: float, atol: float) -> None:
    """``out`` = (d_ap, d_an, idx_p, idx_n) against the float64 reference of the same inputs.

    Values must be close; an index may differ from the reference's only where the distance it
    points to ties the reference's winner within the tolerance (and is a valid choice).
    """
    d_ap, d_an, idx_p, idx_n = (t.cpu() for t in out)
    xd = x.detach().cpu().double()
    lab = labels.cpu()
    n = xd.shape[0]
    r_ap, r_an, r_ip, r_in = reference.batch_hard_mine(xd, lab)
    assert d_ap.dtype == x.dtype and d_an.dtype == x.dtype
    assert idx_p.dtype == torch.int64 and idx_n.dtype == torch.int64
    assert d_ap.shape == d_an.shape == idx_p.shape == idx_n.shape == (n,)
    torch.testing.assert_close(d_ap.double(), r_ap, rtol=rtol, atol=atol)
    finite = torch.isfinite(r_an)
    assert torch.equal(torch.isfinite(d_an.double()), finite)
    torch.testing.assert_close(d_an.double()[finite], r_an[finite], rtol=rtol, atol=atol)
    assert torch.equal(idx_n < 0, ~finite)
    dist = reference.pairwise_distance(xd, xd)
    same = lab[:, None] == lab[None, :]
    rows = torch.arange(n)
    has_p = r_ip != rows
    assert torch.equal(idx_p[~has_p], rows[~has_p])
    for i in torch.nonzero(idx_p != r_ip).flatten().tolist():
        j = int(idx_p[i])
        assert j != i and bool(same[i, j]), f"anchor {i}: idx_p {j} is not another sample of its identity"
        assert abs(float(dist[i, j]) - float(r_ap[i])) <= atol + rtol * float(r_ap[i]), (
            f"anchor {i}: idx_p {j} (distance {float(dist[i, j])}) does not tie the hardest positive "
            f"{int(r_ip[i])} ({float(r_ap[i])})"
        )
    for i in torch.nonzero(idx_n != r_in).flatten().tolist():
        j = int(idx_n[i])
        assert j >= 0 and not bool(same[i, j]), f"anchor {i}: idx_n {j} is not a sample of another identity"
        assert abs(float(dist[i, j]) - float(r_an[i])) <= atol + rtol * float(r_an[i]), (
            f"anchor {i}: idx_n {j} (distance {float(dist[i, j])}) does not tie the hardest negative "
            f"{int(r_in[i])} ({float(r_an[i])})"
        )
