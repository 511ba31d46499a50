"""Re-ID ranking metrics: CMC, mAP and mINP under the Market-1501 protocol, and the classic CUHK03 protocol.

Protocol (torchreid's ``eval_market1501`` and the official Market-1501 kit): for each query, gallery images with the
query's pid *and* camera are removed, as are junk images (gallery pid -1); a query without any remaining match is
skipped and counted. A camera id below 0 means "unknown camera" and never triggers the same-camera removal (the
metric-learning data sets use -1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ._inputs import LabelsLike, as_labels, as_tensor, positive_int

__all__ = ["RankMetrics", "rank_metrics", "cuhk03_rank_metrics"]


@dataclass(frozen=True, eq=False)
class RankMetrics:
    """Result of :func:`rank_metrics`.

    Attributes:
        cmc: float64 array (max_rank,); ``cmc[r]`` = fraction of valid queries with a correct match within the top
            r + 1 (ranks beyond the gallery size repeat the last value).
        mAP, mINP: means over valid queries, in [0, 1].
        num_valid_queries, num_queries: queries with at least one valid match / all queries.
        average_precision, inverse_negative_penalty: float64 arrays (num_queries,), NaN for skipped queries.
        first_match_rank: int64 array (num_queries,), 1-based, -1 for skipped queries.
        ap_cutoff: None for full-ranking AP, else the rank at which AP was truncated.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_queries: int
    average_precision: np.ndarray = field(repr=False)
    inverse_negative_penalty: np.ndarray = field(repr=False)
    first_match_rank: np.ndarray = field(repr=False)
    ap_cutoff: int | None = None


def _check_inputs(distmat, query_pids, gallery_pids, query_camids, gallery_camids, max_rank, ap_cutoff, chunk_size):
    positive_int(chunk_size, "chunk_size")
    dist = as_tensor(distmat, "distmat", 2)
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat must be non-empty, got shape {tuple(dist.shape)}")
    dev = dist.device
    labels = (as_labels(query_pids, "query_pids", num_q, dev), as_labels(gallery_pids, "gallery_pids", num_g, dev),
              as_labels(query_camids, "query_camids", num_q, dev),
              as_labels(gallery_camids, "gallery_camids", num_g, dev))
    positive_int(max_rank, "max_rank")
    if ap_cutoff is not None and (isinstance(ap_cutoff, bool) or not isinstance(ap_cutoff, (int, np.integer))
                                  or ap_cutoff < 1):
        raise ValueError(f"ap_cutoff must be None or a positive int, got {ap_cutoff!r}")
    return dist, labels


def _sorted_masks(dist, q_pids, g_pids, q_cams, g_cams):
    """For a chunk of queries: the ranking, and in ranked order which entries are kept and which are matches."""
    order = torch.argsort(dist, dim=1, stable=True)
    same_pid = g_pids.unsqueeze(0) == q_pids.unsqueeze(1)
    same_cam = (g_cams.unsqueeze(0) == q_cams.unsqueeze(1)) & (q_cams.unsqueeze(1) >= 0)
    keep = ~(same_pid & same_cam) & (g_pids != -1).unsqueeze(0)
    keep = keep.gather(1, order)
    hits = same_pid.gather(1, order) & keep
    return order, keep, hits


def _cmc_from_first(first: torch.Tensor, max_rank: int) -> np.ndarray:
    counts = torch.bincount((first - 1).clamp(max=max_rank), minlength=max_rank + 1)[:max_rank]
    return (counts.cumsum(0).double() / first.numel()).cpu().numpy()


def rank_metrics(distmat: torch.Tensor | np.ndarray, query_pids: LabelsLike, gallery_pids: LabelsLike,
                 query_camids: LabelsLike, gallery_camids: LabelsLike, max_rank: int = 50,
                 ap_cutoff: int | None = None, *, chunk_size: int = 256) -> RankMetrics:
    """CMC, mAP and mINP of a query x gallery distance matrix (smaller = more similar).

    Args:
        distmat: (Q, G) distances, tensor (any device) or numpy array.
        query_pids, query_camids: (Q,) ints; gallery_pids, gallery_camids: (G,) ints.
        max_rank: length of the returned CMC.
        ap_cutoff: None (default) for AP over the full ranking, as torchreid and the Market-1501 kit compute it;
            an int k for the official BDB code's variant, which sums precision only over matches within the top k
            but still divides by all matches (reads a little lower).
        chunk_size: queries ranked at once; memory is about 40 x chunk_size x G bytes.

    AP = (1/R) sum over matches i of (i / rank of the i-th match); INP = R / rank of the last match (Zheng et al.,
    TPAMI 2021), with ranks counted after removal. Ties in distance keep gallery order (stable sort).
    Raises ValueError if no query has a valid match.
    """
    dist, (q_pids, g_pids, q_cams, g_cams) = _check_inputs(distmat, query_pids, gallery_pids, query_camids,
                                                           gallery_camids, max_rank, ap_cutoff, chunk_size)
    max_rank, chunk_size = int(max_rank), int(chunk_size)
    ap_cutoff = None if ap_cutoff is None else int(ap_cutoff)
    num_q = dist.shape[0]
    first_rank = torch.full((num_q,), -1, dtype=torch.long, device=dist.device)
    ap = torch.full((num_q,), float("nan"), dtype=torch.float64, device=dist.device)
    inp = torch.full_like(ap, float("nan"))
    for start in range(0, num_q, chunk_size):
        rows = slice(start, start + chunk_size)
        _, keep, hits = _sorted_masks(dist[rows], q_pids[rows], g_pids, q_cams[rows], g_cams)
        kept_rank = keep.cumsum(1)  # 1-based rank among kept entries (valid where keep)
        num_rel = hits.sum(1)
        precision = hits.cumsum(1).double().div_(kept_rank.clamp(min=1)).mul_(hits)
        if ap_cutoff is not None:
            precision.mul_(kept_rank <= ap_cutoff)
        ap[rows] = precision.sum(1) / num_rel
        first_rank[rows] = torch.where(hits, kept_rank, kept_rank.new_tensor(dist.shape[1] + 1)).amin(1)
        inp[rows] = num_rel / torch.where(hits, kept_rank, 0).amax(1).double()
    valid = torch.isfinite(ap)
    first_rank[~valid] = -1
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError("rank_metrics: no query has a valid match in the gallery (every query id is absent from "
                         "the gallery or only seen by the query's own camera)")
    return RankMetrics(cmc=_cmc_from_first(first_rank[valid], max_rank), mAP=float(ap[valid].mean()),
                       mINP=float(inp[valid].mean()), num_valid_queries=num_valid, num_queries=num_q,
                       average_precision=ap.cpu().numpy(), inverse_negative_penalty=inp.cpu().numpy(),
                       first_match_rank=first_rank.cpu().numpy(), ap_cutoff=ap_cutoff)


def cuhk03_rank_metrics(distmat: torch.Tensor | np.ndarray, query_pids: LabelsLike, gallery_pids: LabelsLike,
                        query_camids: LabelsLike, gallery_camids: LabelsLike, max_rank: int = 50,
                        num_repeats: int = 10, seed: int = 0, *, chunk_size: int = 256) -> RankMetrics:
    """The classic CUHK03 protocol (torchreid's ``eval_cuhk03``): single-gallery-shot CMC.

    After the same removal as :func:`rank_metrics`, each gallery identity is represented by one randomly chosen
    remaining image; the CMC of that reduced ranking is averaged over ``num_repeats`` draws (seeded). mAP and mINP
    use the full ranking, as torchreid does. The CUHK03 *new* protocol (767/700) uses :func:`rank_metrics`.
    """
    positive_int(num_repeats, "num_repeats")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    full = rank_metrics(distmat, query_pids, gallery_pids, query_camids, gallery_camids, max_rank,
                        chunk_size=chunk_size)
    dist, (q_pids, g_pids, q_cams, g_cams) = _check_inputs(distmat, query_pids, gallery_pids, query_camids,
                                                           gallery_camids, max_rank, None, chunk_size)
    max_rank, chunk_size, num_repeats = int(max_rank), int(chunk_size), int(num_repeats)
    num_q, num_g = dist.shape
    _, identity = torch.unique(g_pids, return_inverse=True)
    num_ids = int(identity.max()) + 1
    generator = torch.Generator(device=dist.device).manual_seed(int(seed))
    valid = torch.as_tensor(full.first_match_rank > 0, device=dist.device)
    cmc = np.zeros(max_rank)
    for start in range(0, num_q, chunk_size):
        rows = slice(start, start + chunk_size)
        order, keep, hits = _sorted_masks(dist[rows], q_pids[rows], g_pids, q_cams[rows], g_cams)
        batch = order.shape[0]
        for _ in range(num_repeats):
            # One uniformly random kept image per (query, identity): the one with the largest random key.
            keys = torch.rand(batch, num_g, dtype=torch.float64, generator=generator, device=dist.device)
            keys = torch.where(keep, keys.gather(1, order), -1.0)  # ranked order
            ranked_identity = identity[order]
            best = torch.full((batch, num_ids), -1.0, dtype=torch.float64, device=dist.device)
            best.scatter_reduce_(1, ranked_identity, keys, reduce="amax")
            chosen = keep & (keys == best.gather(1, ranked_identity))
            rank_among_chosen = chosen.cumsum(1)
            first = torch.where(hits & chosen, rank_among_chosen, num_g + 1).amin(1)
            first = first[valid[rows]]
            if first.numel():
                cmc += _cmc_from_first(first, max_rank) * first.numel()
    cmc /= num_repeats * full.num_valid_queries
    return RankMetrics(cmc=cmc, mAP=full.mAP, mINP=full.mINP, num_valid_queries=full.num_valid_queries,
                       num_queries=full.num_queries, average_precision=full.average_precision,
                       inverse_negative_penalty=full.inverse_negative_penalty,
                       first_match_rank=full.first_match_rank, ap_cutoff=None)
