"""Entry points of the metric-learning ops (pairwise_distance, batch_hard_mine, batch_hard_triplet_loss)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._args import check_tensor

__all__ = ["MiningOps", "REDUCTIONS"]

REDUCTIONS = ("mean", "sum", "none")


def check_margin(margin: float | None) -> float | None:
    """``margin`` as a float (None: soft margin); rejects non-numbers and non-finite values."""
    if margin is None:
        return None
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise TypeError(f"margin must be a finite float or None (soft margin), got {type(margin).__name__}")
    if not math.isfinite(margin):
        raise ValueError(f"margin must be finite (or None for the soft margin), got {margin!r}")
    return float(margin)


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


class MiningOps:
    """Mixin of :class:`~bdb_ext.ops.library.OpLibrary`; ``self._ops`` is the ``torch.ops`` namespace."""

    _ops: object

    def pairwise_distance(
        self, x: torch.Tensor, y: torch.Tensor | None = None, squared: bool = False
    ) -> torch.Tensor:
        """Euclidean distances between the rows of ``x`` and ``y``.

        Args:
            x: (N, D) float32/float64/float16/bfloat16.
            y: (M, D), same dtype and device; ``None`` means ``x``.
            squared: return squared distances.

        Returns:
            (N, M) in x's dtype (fp16/bf16 accumulate in fp32). Pairs close enough for
            |a|^2 + |b|^2 - 2ab to cancel are measured as sum((a - b)^2). Differentiable in x and y;
            the gradient of a zero distance is 0 (as torch.cdist), never NaN.
        """
        check_tensor("x", x)
        if y is None:
            y = x
        check_tensor("y", y)
        return self._ops.pairwise_distance(x, y, bool(squared))

    def batch_hard_mine(
        self, x: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hardest positive and hardest negative of every anchor of a batch, by Euclidean distance.

        Args:
            x: (N, D) embeddings, float32/float64/float16/bfloat16.
            labels: (N,) int64 identities on x's device; any values, any number of samples each.

        Returns:
            (d_ap, d_an, idx_p, idx_n), each (N,). For anchor i: idx_p = the j != i with
            labels[j] == labels[i] farthest from x[i], d_ap its distance (no other sample of the
            identity: d_ap = 0, idx_p = i); idx_n = the j with labels[j] != labels[i] closest to
            x[i], d_an its distance (none: d_an = inf, idx_n = -1). Ties go to the smallest index.
            d_ap and d_an are in x's dtype, measured as sqrt(sum((x_i - x_j)^2)), and differentiable
            in x (the backward touches only the 2N chosen pairs); the indices are int64.
        """
        check_tensor("x", x)
        check_tensor("labels", labels)
        return self._ops.batch_hard_mine(x, labels)

    def batch_hard_triplet_loss(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        margin: float | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Batch-hard triplet loss (Hermans et al. 2017) as in the Batch DropBlock reference code.

        Args:
            x: (N, D) embeddings; labels: (N,) int64 on x's device.
            margin: None for the soft margin log(1 + exp(d_ap - d_an)) (the reference code's
                default), else the hard margin max(0, d_ap - d_an + margin). Must be finite.
            reduction: "mean" (over the anchors that have a negative; 0 when none has one),
                "sum", or "none" ((N,) per-anchor losses, 0 for anchors without a negative).

        Returns:
            The loss in x's dtype, attached to x's graph even when it is 0.
        """
        margin = check_margin(margin)
        check_reduction(reduction)
        d_ap, d_an, _, idx_n = self.batch_hard_mine(x, labels)
        has_negative = idx_n >= 0
        # Anchors without a negative have d_an = inf; compare them with themselves so no inf enters
        # the arithmetic (their loss is masked to 0 and gets no gradient).
        d_an = torch.where(has_negative, d_an, d_ap)
        gap = d_ap - d_an
        per_anchor = F.softplus(gap) if margin is None else F.relu(gap + margin)
        per_anchor = torch.where(has_negative, per_anchor, torch.zeros_like(per_anchor))
        if reduction == "none":
            return per_anchor
        total = per_anchor.sum()
        if reduction == "sum":
            return total
        count = has_negative.sum().clamp(min=1).to(total.dtype)
        return total / count
