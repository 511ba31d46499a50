"""Batch-hard triplet loss as an nn.Module."""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..ops.mining import check_margin, check_reduction

__all__ = ["BatchHardTripletLoss"]


class BatchHardTripletLoss(nn.Module):
    """Batch-hard triplet loss on Euclidean distances, as in the Batch DropBlock reference code.

    For each anchor: the farthest sample of its identity (hardest positive, itself excluded) and the
    closest sample of another identity (hardest negative), found and differentiated by the fused
    ``batch_hard_mine`` op (no N x N tensor on CUDA; the backward touches only the 2N chosen pairs).

    Args:
        margin: None (default) for the soft margin log(1 + exp(d_ap - d_an)); a finite float >= 0 for
            the hard margin max(0, d_ap - d_an + margin) (0.3 is the common choice).
        reduction: "mean" over the anchors that have a negative (0, still attached to the graph, when
            none has one), "sum", or "none" for the (N,) per-anchor losses.

    Shape: embeddings (N, D) float32/float64/float16/bfloat16, labels (N,) int64 on the same device
    -> a scalar (or (N,) for reduction="none") in the embeddings' dtype.
    """

    def __init__(self, margin: float | None = None, reduction: str = "mean") -> None:
        super().__init__()
        self.margin = check_margin(margin)
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return ops.batch_hard_triplet_loss(embeddings, labels, self.margin, self.reduction)
