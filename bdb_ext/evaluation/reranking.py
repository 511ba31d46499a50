"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li, "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), in torch, on CPU or GPU, in bounded memory.

It follows the published algorithm step for step (squared, row-normalised distances over query + gallery jointly;
k-reciprocal sets with the 2/3 expansion rule; Gaussian-kernel encodings; query expansion over k2 neighbours;
Jaccard distance; a lambda mix with the original distance) but never builds a dense N x N matrix beyond the inputs
themselves: distances are read in row blocks, only the top-k neighbour table is kept, and the encodings, which have a
few hundred non-zeros per row, are held sparse.
"""

from __future__ import annotations

import numpy as np
import torch

from ._inputs import as_device, as_tensor, positive_int
from .distances import distances_of_checked

__all__ = ["re_ranking", "re_ranking_features"]

class _MatrixSource:
    """Squared distances read from the three input matrices.

    The published code uses *columns* of the joint matrix [[q_q, q_g], [q_g^T, g_g]] as rows; reading columns keeps
    that exact for inputs that are not perfectly symmetric (q_q and g_g built with matrix products usually are not).
    """

    def __init__(self, q_g: torch.Tensor, q_q: torch.Tensor, g_g: torch.Tensor, device: torch.device) -> None:
        self.q_g, self.q_q, self.g_g, self.device = q_g, q_q, g_g, device
        self.num_q = q_q.shape[0]

    def squared_rows(self, a: int, b: int) -> torch.Tensor:
        q = self.num_q
        if b <= q:
            block = torch.cat([self.q_q[:, a:b], self.q_g[a:b].T], dim=0)
        else:
            block = torch.cat([self.q_g[:, a - q:b - q], self.g_g[:, a - q:b - q]], dim=0)
        return block.to(self.device).T.square()

    def squared_pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """joint[j, i] ** 2 for index vectors i, j (on ``device``)."""
        q = self.num_q
        i, j = i.to(self.q_g.device), j.to(self.q_g.device)
        out = torch.empty(i.shape, dtype=self.q_g.dtype, device=i.device)
        i_query, j_query = i < q, j < q
        mask = i_query & j_query
        out[mask] = self.q_q[j[mask], i[mask]]
        mask = i_query & ~j_query
        out[mask] = self.q_g[i[mask], j[mask] - q]  # joint[j, i] = q_g^T[j - Q, i]
        mask = ~i_query & j_query
        out[mask] = self.q_g[j[mask], i[mask] - q]
        mask = ~i_query & ~j_query
        out[mask] = self.g_g[j[mask] - q, i[mask] - q]
        return out.to(self.device).square()


class _FeatureSource:
    """Squared Euclidean distances computed from features, block by block or pair by pair."""

    def __init__(self, features: torch.Tensor, pair_chunk: int = 16384) -> None:
        self.features, self.pair_chunk = features, pair_chunk

    def squared_rows(self, a: int, b: int) -> torch.Tensor:
        return distances_of_checked(self.features[a:b], self.features, "sqeuclidean", b - a)

    def squared_pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        out = torch.empty(i.shape, dtype=self.features.dtype, device=self.features.device)
        for start in range(0, i.numel(), self.pair_chunk):
            stop = start + self.pair_chunk
            out[start:stop] = (self.features[i[start:stop]] - self.features[j[start:stop]]).square().sum(dim=1)
        return out


_TINY = torch.finfo(torch.float32).tiny


def _blocks(start: int, stop: int, size: int):
    for a in range(start, stop, size):
        yield a, min(a + size, stop)


def _reciprocal_mask(rank: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """mask[r, m]: is ``rows[r]`` among the neighbours of its own m-th neighbour ``rank[rows[r], m]``?"""
    neighbours = rank[rows]  # (B, k)
    return (rank[neighbours] == rows.view(-1, 1, 1)).any(dim=-1)


def _k_reciprocal_expansion(rank_full: torch.Tensor, rank_half: torch.Tensor, rows: torch.Tensor,
                            num: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted, de-duplicated expansion sets of ``rows`` as (indices, valid) padded to a fixed width."""
    k_full = rank_full[rows]                                     # (B, k1+1) forward neighbours
    recip = _reciprocal_mask(rank_full, rows)                    # (B, k1+1) k-reciprocal set R(i, k1)
    cand_half = rank_half[k_full]                                # (B, k1+1, kh+1) candidates' neighbours
    cand_recip = _reciprocal_mask(rank_half, k_full.reshape(-1)).view_as(cand_half)  # R(c, k1/2)
    in_set = ((cand_half.unsqueeze(-1) == k_full.view(k_full.shape[0], 1, 1, -1))
              & recip.view(recip.shape[0], 1, 1, -1)).any(dim=-1)
    overlap = (in_set & cand_recip).sum(dim=-1).double()
    size = cand_recip.sum(dim=-1).double()
    accept = recip & (overlap > 2.0 / 3.0 * size)                # the published 2/3 rule
    members = torch.cat([torch.where(recip, k_full, num).flatten(1),
                         torch.where(accept.unsqueeze(-1) & cand_recip, cand_half, num).flatten(1)], dim=1)
    members, _ = members.sort(dim=1)
    valid = members < num
    valid[:, 1:] &= members[:, 1:] != members[:, :-1]
    return members, valid


def _runs(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenated ranges [starts[e], starts[e] + counts[e]) for every e: the entries of a list of CSR rows."""
    total = int(counts.sum())
    run_begin = torch.cumsum(counts, 0) - counts
    shift = torch.repeat_interleave(starts - run_begin, counts, output_size=total)
    return shift.add_(torch.arange(total, device=counts.device))


def _re_rank(source: _MatrixSource | _FeatureSource, num_q: int, num_g: int, k1: int, k2: int,
             lambda_value: float, chunk_size: int, device: torch.device, pair_budget: int) -> torch.Tensor:
    num = num_q + num_g
    # The published code slices the N x N argsort: [:k1 + 1], [:round(k1 / 2) + 1] and [:k2] silently stop at N on a
    # set smaller than k, and its query expansion averages over those N neighbours. The slices below are clamped
    # the same way; k2 is clamped here because it is also the divisor of that average. (k1 is not: the published
    # round(k1 / 2) uses the unclamped k1.)
    k2 = min(k2, num)
    boundaries = list(_blocks(0, num_q, chunk_size)) + list(_blocks(num_q, num, chunk_size))

    # 1. Neighbour table: only the first max(k1 + 1, k2) columns of the published full argsort are ever read.
    #    Distances are normalised by their row maximum (the published code divides columns, then transposes).
    width = min(max(k1 + 1, k2), num)
    rank = torch.empty(num, width, dtype=torch.long, device=device)
    row_max = torch.empty(num, dtype=torch.float32, device=device)
    query_dist = torch.empty(num_q, num_g, dtype=torch.float32, device=device)  # kept for the final mix
    for a, b in boundaries:
        d2 = source.squared_rows(a, b)
        row_max[a:b] = d2.amax(dim=1).float().clamp_(min=_TINY)
        dist = d2.float().div_(row_max[a:b].unsqueeze(1))
        rank[a:b] = torch.topk(dist, width, dim=1, largest=False, sorted=True).indices
        if b <= num_q:
            query_dist[a:b] = dist[:, num_q:]
        del d2, dist
    rank_full = rank[:, :min(k1 + 1, num)]
    rank_half = rank[:, :min(int(round(k1 / 2)) + 1, num)]

    # 2. Sparse encodings V: V[i, j] = exp(-d(i, j)) / sum over the expanded k-reciprocal set of i. Only these
    #    few distances per row are needed, so they are read (or computed) pair by pair.
    v_rows, v_cols, v_vals = [], [], []
    for a, b in boundaries:
        index = torch.arange(a, b, device=device)
        members, valid = _k_reciprocal_expansion(rank_full, rank_half, index, num)
        i, j = index.unsqueeze(1).expand_as(members)[valid], members[valid]
        weights = torch.exp(-(source.squared_pairs(i, j).float() / row_max[i]))
        sums = torch.zeros(b - a, dtype=torch.float32, device=device).index_add_(0, i - a, weights)
        v_rows.append(i)
        v_cols.append(j)
        v_vals.append(weights / sums[i - a])
    v_rows, v_cols, v_vals = torch.cat(v_rows), torch.cat(v_cols), torch.cat(v_vals)

    # 3. Local query expansion: V[i] <- mean of V over the k2 nearest neighbours of i.
    if k2 != 1:
        crow = torch.zeros(num + 1, dtype=torch.long, device=device)
        crow[1:] = torch.cumsum(torch.bincount(v_rows, minlength=num), 0)
        sources = rank[:, :k2].reshape(-1)
        counts = crow[sources + 1] - crow[sources]
        pos = _runs(crow[sources], counts)
        owner = torch.repeat_interleave(torch.arange(num, device=device).repeat_interleave(k2), counts,
                                        output_size=pos.numel())
        # Sum duplicate (row, column) entries; unique() also sorts them row-major, which step 4 relies on.
        keys, inverse = torch.unique(owner * num + v_cols[pos], return_inverse=True)
        v_vals = torch.zeros(keys.numel(), dtype=v_vals.dtype, device=device).index_add_(0, inverse, v_vals[pos] / k2)
        v_rows, v_cols = torch.div(keys, num, rounding_mode="floor"), keys % num

    # 4. Jaccard distance between each query's encoding and each gallery encoding, mixed with the distance.
    return _jaccard_mix(v_rows, v_cols, v_vals, query_dist, lambda_value, chunk_size, pair_budget)


def _jaccard_mix(v_rows: torch.Tensor, v_cols: torch.Tensor, v_vals: torch.Tensor, query_dist: torch.Tensor,
                 lambda_value: float, chunk_size: int, pair_budget: int) -> torch.Tensor:
    """(1 - lambda) * Jaccard(V[query], V[gallery]) + lambda * query_dist, for V given as row-major sorted COO.

    Jaccard = 1 - sum(min) / sum(max), with sum(max) = 2 - sum(min) since every encoding sums to 1. The sums of
    minima run over shared columns only, joined through an inverted (column) index of the gallery encodings.
    """
    num_q, num_g = query_dist.shape
    num = num_q + num_g
    device = query_dist.device
    in_gallery = v_rows >= num_q
    g_cols = v_cols[in_gallery]
    perm = torch.argsort(g_cols, stable=True)
    g_rows, g_vals = (v_rows[in_gallery] - num_q)[perm], v_vals[in_gallery][perm]
    col_ptr = torch.zeros(num + 1, dtype=torch.long, device=device)
    col_ptr[1:] = torch.cumsum(torch.bincount(g_cols, minlength=num), 0)
    q_end = int(torch.searchsorted(v_rows, torch.tensor([num_q], device=device)))
    q_rows, q_cols, q_vals = v_rows[:q_end], v_cols[:q_end], v_vals[:q_end]
    col_start = col_ptr[q_cols]
    pairs_per_entry = col_ptr[q_cols + 1] - col_start
    pairs_per_query = torch.zeros(num_q, dtype=torch.long, device=device).index_add_(0, q_rows, pairs_per_entry)
    entry_ptr = torch.zeros(num_q + 1, dtype=torch.long, device=device)
    entry_ptr[1:] = torch.cumsum(torch.bincount(q_rows, minlength=num_q), 0)

    out = torch.empty(num_q, num_g, dtype=torch.float32, device=device)
    for a, b in _query_blocks(pairs_per_query.cpu().numpy(), chunk_size, pair_budget):
        e0, e1 = int(entry_ptr[a]), int(entry_ptr[b])
        counts = pairs_per_entry[e0:e1]
        # Every (query entry, gallery entry of the same column) pair: repeat the query side, gather the gallery side.
        pos = _runs(col_start[e0:e1], counts)
        total = pos.numel()
        shared = torch.minimum(torch.repeat_interleave(q_vals[e0:e1], counts, output_size=total), g_vals[pos])
        flat = torch.repeat_interleave((q_rows[e0:e1] - a) * num_g, counts, output_size=total).add_(g_rows[pos])
        overlap = torch.zeros((b - a) * num_g, dtype=torch.float32, device=device)
        overlap.scatter_add_(0, flat, shared)
        overlap = overlap.view(b - a, num_g)
        jaccard = 1 - overlap / (2 - overlap)
        out[a:b] = jaccard * (1 - lambda_value) + query_dist[a:b] * lambda_value
    return out


def _query_blocks(pairs: np.ndarray, max_rows: int, budget: int):
    """Consecutive query ranges of at most ``max_rows`` rows and, where possible, ``budget`` joined pairs."""
    a = 0
    while a < len(pairs):
        total, b = 0, a
        while b < len(pairs) and b - a < max_rows and (b == a or total + pairs[b] <= budget):
            total += pairs[b]
            b += 1
        yield a, b
        a = b


def _check_settings(k1: int, k2: int, lambda_value: float, chunk_size: int, pair_budget: int,
                    ) -> tuple[int, int, float, int, int]:
    """The settings checked and as plain Python numbers; k1 and k2 larger than the set are allowed (clamped)."""
    k1, k2 = positive_int(k1, "re_ranking: k1"), positive_int(k2, "re_ranking: k2")
    if isinstance(lambda_value, bool) or not isinstance(lambda_value, (int, float, np.integer, np.floating)):
        raise TypeError(f"re_ranking: lambda_value must be a float in [0, 1], got {type(lambda_value).__name__}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"re_ranking: lambda_value must be in [0, 1], got {lambda_value!r}")
    return (k1, k2, float(lambda_value), positive_int(chunk_size, "re_ranking: chunk_size"),
            positive_int(pair_budget, "re_ranking: pair_budget"))


def re_ranking(q_g_dist: torch.Tensor | np.ndarray, q_q_dist: torch.Tensor | np.ndarray,
               g_g_dist: torch.Tensor | np.ndarray, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, *,
               device: torch.device | str | None = None, chunk_size: int = 1024,
               pair_budget: int = 4_000_000) -> torch.Tensor:
    """Re-ranked query x gallery distances.

    Args:
        q_g_dist: (Q, G), q_q_dist: (Q, Q), g_g_dist: (G, G) Euclidean (not squared) distances, as in the
            published code; tensors on any device or numpy arrays. They are squared and read in column blocks.
        k1, k2, lambda_value: the published parameters (defaults 20, 6, 0.3).
        device: where to compute; default the device of ``q_g_dist``. Inputs on the CPU can be processed on a GPU
            block by block.
        chunk_size: rows per block; extra memory is a few chunk_size x (Q + G) float32 blocks.
        pair_budget: largest number of (query entry, gallery entry) pairs joined at once in the Jaccard step.

    Returns:
        (Q, G) float32 tensor on ``device``: (1 - lambda) * Jaccard distance + lambda * normalised squared distance.
    """
    k1, k2, lambda_value, chunk_size, pair_budget = _check_settings(k1, k2, lambda_value, chunk_size, pair_budget)
    q_g = as_tensor(q_g_dist, "q_g_dist", 2)
    device = as_device(device, "re_ranking: device") if device is not None else q_g.device
    q_q = as_tensor(q_q_dist, "q_q_dist", 2, device=q_g.device)
    g_g = as_tensor(g_g_dist, "g_g_dist", 2, device=q_g.device)
    num_q, num_g = q_g.shape
    if q_q.shape != (num_q, num_q) or g_g.shape != (num_g, num_g):
        raise ValueError(f"re_ranking: with q_g_dist of shape {(num_q, num_g)}, q_q_dist must be {(num_q, num_q)} "
                         f"and g_g_dist {(num_g, num_g)}; got {tuple(q_q.shape)} and {tuple(g_g.shape)}")
    if num_q == 0 or num_g == 0:
        raise ValueError(f"re_ranking: q_g_dist must be non-empty, got shape {(num_q, num_g)}")
    with torch.no_grad():
        return _re_rank(_MatrixSource(q_g, q_q, g_g, device), num_q, num_g, k1, k2, lambda_value, chunk_size,
                        device, pair_budget)


def re_ranking_features(query: torch.Tensor | np.ndarray, gallery: torch.Tensor | np.ndarray, k1: int = 20,
                        k2: int = 6, lambda_value: float = 0.3, *, device: torch.device | str | None = None,
                        chunk_size: int = 1024, pair_budget: int = 4_000_000) -> torch.Tensor:
    """:func:`re_ranking` on the Euclidean distances of (Q, D) query and (G, D) gallery features, computed block by
    block so that the (G, G) gallery distance matrix is never held (about 1 GB at Market-1501 size)."""
    k1, k2, lambda_value, chunk_size, pair_budget = _check_settings(k1, k2, lambda_value, chunk_size, pair_budget)
    query = as_tensor(query, "query", 2)
    device = as_device(device, "re_ranking_features: device") if device is not None else query.device
    gallery = as_tensor(gallery, "gallery", 2, device=query.device)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(f"re_ranking_features: query and gallery feature sizes differ: {query.shape[1]} vs "
                         f"{gallery.shape[1]}")
    if query.shape[0] == 0 or gallery.shape[0] == 0:
        raise ValueError(f"re_ranking_features: query and gallery must be non-empty, got {query.shape[0]} and "
                         f"{gallery.shape[0]} rows")
    features = torch.cat([query, gallery.to(query.dtype)]).to(device)
    with torch.no_grad():
        return _re_rank(_FeatureSource(features), query.shape[0], gallery.shape[0], k1, k2, lambda_value,
                        chunk_size, device, pair_budget)
