"""Pure-PyTorch references for every bdb_ext op, written to mirror the published reference code
(daizuozhuo/batch-dropblock-network). Tests and benchmarks compare the fused kernels with these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "batch_drop_block",
    "batch_drop_block_broadcast",
    "batch_hard_mine",
    "batch_hard_triplet_loss",
    "drop_pool",
    "euclidean_dist",
    "hard_example_mining",
    "hard_example_mining_mask",
    "pairwise_distance",
    "triplet_loss_from_mined",
    "triplet_loss_mask_form",
    "triplet_loss_reference_code",
]


def _rect_values(rect: torch.Tensor | Sequence[int], x: torch.Tensor, op: str) -> list[int]:
    """``rect`` as 4 ints, under the fused ops' rule: height, width >= 0 and the rectangle inside the map.

    The rule and its messages are those of ``check_rect`` in csrc/host/drop_args.h, which the fused kernels
    apply to every rect they can read without a host sync (a CPU rect; a rect on the GPU is clamped there).
    Without it, slicing would silently clip a rect that overhangs the map, or wrap a negative top around.
    """
    values = [int(v) for v in (rect.tolist() if isinstance(rect, torch.Tensor) else rect)]
    if len(values) != 4:
        raise ValueError(f"{op}: rect must hold 4 ints [top, left, height, width], got {values!r}")
    top, left, rows, cols = values
    height, width = x.shape[2], x.shape[3]
    if rows < 0 or cols < 0:
        raise ValueError(
            f"{op}: rect height and width must be >= 0, got [top={top}, left={left}, height={rows}, width={cols}]"
        )
    if top < 0 or left < 0 or top + rows > height or left + cols > width:
        raise ValueError(
            f"{op}: rect [top={top}, left={left}, height={rows}, width={cols}] must lie inside the "
            f"{height}x{width} feature map"
        )
    return values


def batch_drop_block(x: torch.Tensor, rect: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """The reference code's BatchDrop: a full-size ones mask, the rectangle zeroed, then x * mask.

    The rect must lie inside the map, as for the fused op (ValueError otherwise)."""
    top, left, height, width = _rect_values(rect, x, "batch_drop_block")
    mask = x.new_ones(x.size())
    mask[:, :, top : top + height, left : left + width] = 0
    return x * mask


def batch_drop_block_broadcast(x: torch.Tensor, rect: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """A leaner eager form: a (1, 1, H, W) mask broadcast over the batch and channels."""
    top, left, height, width = _rect_values(rect, x, "batch_drop_block")
    mask = x.new_ones((1, 1, x.shape[2], x.shape[3]))
    mask[:, :, top : top + height, left : left + width] = 0
    return x * mask


def drop_pool(x: torch.Tensor, rect: torch.Tensor | Sequence[int], mode: str = "max") -> torch.Tensor:
    """The reference code's BDB branch head: BatchDrop, then AdaptiveMaxPool2d (or Avg), flattened to (N, C)."""
    y = batch_drop_block(x, rect)
    if y.numel() == 0:  # adaptive pooling rejects empty channel dims; the pooled result is just empty
        return y.new_zeros(y.shape[:2]) + y.sum(dim=(2, 3))
    pooled = F.adaptive_max_pool2d(y, 1) if mode == "max" else F.adaptive_avg_pool2d(y, 1)
    return pooled.flatten(1)


# --- Metric learning: distances, batch-hard mining, triplet loss -------------------------------


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference code's distance matrix (N, M): |x|^2 + |y|^2 - 2 x y^T by addmm, clamped at
    1e-12, square root. (The original's deprecated ``addmm_(1, -2, x, y.t())`` is written with
    keywords.) Loses accuracy to cancellation for close pairs; the clamp gives them a distance of
    1e-6 and a zero gradient.
    """
    m, n = x.size(0), y.size(0)
    xx = torch.pow(x, 2).sum(1, keepdim=True).expand(m, n)
    yy = torch.pow(y, 2).sum(1, keepdim=True).expand(n, m).t()
    dist = xx + yy
    dist = dist.addmm(x, y.t(), beta=1, alpha=-2)
    return dist.clamp(min=1e-12).sqrt()


def hard_example_mining(dist_mat: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference code's batch-hard mining: (dist_ap, dist_an), each (N,).

    Mirrors its math: positives are ``labels[i] == labels[j]`` *including the anchor itself* (so an
    identity with one sample gets d_ap = dist[i, i], about 1e-6 after the clamp), negatives are the
    rest; hardest positive = max, hardest negative = min, over N x N boolean masks. The original
    gathers with ``dist_mat[is_pos].contiguous().view(N, -1)``, which only works when every identity
    has the same number of samples and syncs the host; this version uses masked max/min instead so
    it accepts any batch (an anchor without a negative gets +inf).
    """
    n = dist_mat.size(0)
    is_pos = labels.expand(n, n).eq(labels.expand(n, n).t())
    is_neg = ~is_pos
    dist_ap = dist_mat.masked_fill(~is_pos, float("-inf")).max(1).values
    dist_an = dist_mat.masked_fill(~is_neg, float("inf")).min(1).values
    return dist_ap, dist_an


def hard_example_mining_mask(dist_mat: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-hard mining in the mask form of later re-ID toolkits (fast-reid's ``hard_example_mining``):
    ``max(dist * is_pos)`` and ``min(dist * is_neg + is_pos * 1e9)`` with float masks; no boolean
    gather, no host sync, any number of samples per identity (an anchor without a negative gets 1e9).
    """
    n = dist_mat.size(0)
    is_pos = labels.view(n, 1).eq(labels.view(1, n)).to(dist_mat.dtype)
    is_neg = 1 - is_pos
    dist_ap = torch.max(dist_mat * is_pos, dim=1).values
    dist_an = torch.min(dist_mat * is_neg + is_pos * 1e9, dim=1).values
    return dist_ap, dist_an


def _ranking_loss(dist_ap: torch.Tensor, dist_an: torch.Tensor, margin: float | None) -> torch.Tensor:
    y = torch.ones_like(dist_an)
    if margin is None:
        return F.soft_margin_loss(dist_an - dist_ap, y)
    return F.margin_ranking_loss(dist_an, dist_ap, y, margin=margin)


def triplet_loss_reference_code(x: torch.Tensor, labels: torch.Tensor, margin: float | None = None) -> torch.Tensor:
    """The reference code's TripletLoss: euclidean_dist, hard_example_mining, then SoftMarginLoss
    (margin None) or MarginRankingLoss(margin), averaged over all anchors."""
    dist_ap, dist_an = hard_example_mining(euclidean_dist(x, x), labels)
    return _ranking_loss(dist_ap, dist_an, margin)


def triplet_loss_mask_form(x: torch.Tensor, labels: torch.Tensor, margin: float | None = None) -> torch.Tensor:
    """The same loss with the mask-form mining of later toolkits (fast-reid/torchreid style)."""
    dist_ap, dist_an = hard_example_mining_mask(euclidean_dist(x, x), labels)
    return _ranking_loss(dist_ap, dist_an, margin)


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Exact-form distances (N, M): sqrt(sum((x_i - y_j)^2)) by broadcasting (O(N M D) memory: for
    tests). Pass float64 inputs for a high-precision reference."""
    s = (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)
    return s if squared else s.sqrt()


def _first_index(values: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    # argmax over a bool tensor returns the first True: the smallest index among ties.
    return (values == best[:, None]).to(torch.uint8).argmax(1)


def batch_hard_mine(x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """bdb_ext.ops.batch_hard_mine's exact semantics in eager PyTorch (N x N, for tests).

    The anchor is not its own positive; no other positive: d_ap = 0, idx_p = i; no negative:
    d_an = inf, idx_n = -1; ties to the smallest index; distances in the direct form (see
    :func:`pairwise_distance`). Differentiable in x (through the chosen distances).
    """
    n = x.size(0)
    dist = pairwise_distance(x.detach(), x.detach())
    same = labels.view(n, 1) == labels.view(1, n)
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    is_pos = same & ~eye
    is_neg = ~same
    pos_vals = dist.masked_fill(~is_pos, float("-inf"))
    neg_vals = dist.masked_fill(~is_neg, float("inf"))
    arange = torch.arange(n, device=x.device)
    if n == 0:
        empty = x.sum(-1)  # (0,), still attached to x's graph
        idx = torch.empty((0,), dtype=torch.int64, device=x.device)
        return empty, empty.clone(), idx, idx.clone()
    has_p = is_pos.any(1)
    has_n = is_neg.any(1)
    idx_p = torch.where(has_p, _first_index(pos_vals, pos_vals.max(1).values), arange)
    idx_n = torch.where(has_n, _first_index(neg_vals, neg_vals.min(1).values), torch.full_like(arange, -1))
    d_ap = torch.where(has_p, _pair_distance(x, idx_p), torch.zeros((), dtype=x.dtype, device=x.device))
    d_an = torch.where(
        has_n, _pair_distance(x, idx_n.clamp(min=0)), torch.full((), float("inf"), dtype=x.dtype, device=x.device)
    )
    return d_ap, d_an, idx_p, idx_n


def _pair_distance(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    # |x_i - x_idx[i]| with gradient 0 (not NaN) at distance 0, as torch.cdist.
    s = (x - x[idx]).pow(2).sum(-1)
    positive = s > 0
    return torch.where(positive, s.clamp(min=torch.finfo(s.dtype).tiny).sqrt(), torch.zeros_like(s))


def batch_hard_triplet_loss(
    x: torch.Tensor, labels: torch.Tensor, margin: float | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """bdb_ext.ops.batch_hard_triplet_loss in eager PyTorch on :func:`batch_hard_mine` (for tests):
    soft margin log(1 + exp(d_ap - d_an)) or hard margin max(0, d_ap - d_an + margin), averaged over
    the anchors that have a negative."""
    d_ap, d_an, _, idx_n = batch_hard_mine(x, labels)
    return triplet_loss_from_mined(d_ap, d_an, idx_n, margin, reduction)


def triplet_loss_from_mined(
    d_ap: torch.Tensor, d_an: torch.Tensor, idx_n: torch.Tensor, margin: float | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """bdb_ext.ops' fused loss on mined distances in eager PyTorch: an anchor without a negative (idx_n = -1,
    d_an = inf) contributes 0 and no inf enters the arithmetic (its d_an is replaced by its d_ap)."""
    has_n = idx_n >= 0
    gap = d_ap - torch.where(has_n, d_an, d_ap)
    per = F.softplus(gap) if margin is None else F.relu(gap + margin)
    per = torch.where(has_n, per, torch.zeros_like(per))
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / has_n.sum().clamp(min=1).to(per.dtype)
