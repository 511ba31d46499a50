"""The four-term BDB loss: batch-hard triplet + label-smoothed cross entropy on each of the two branches."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import torch
from torch import nn

from .. import ops
from ..ops.mining import check_margin

__all__ = ["BDBLoss", "BDBLossTerms"]


class BDBLossTerms(NamedTuple):
    """total: the weighted sum (0-dim float32, differentiable); the others: each unweighted term (0-dim float32)."""

    total: torch.Tensor
    triplet_global: torch.Tensor
    triplet_bdb: torch.Tensor
    ce_global: torch.Tensor
    ce_bdb: torch.Tensor


def _check_weight(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


class BDBLoss(nn.Module):
    """triplet(global feature) + triplet(BDB feature) + CE(global logits) + CE(BDB logits), each weighted.

    The triplet terms are batch-hard over Euclidean distances through the fused op
    ``bdb_ext.ops.batch_hard_triplet_loss``: soft margin ``log(1 + exp(d_ap - d_an))`` when ``margin`` is None
    (the official default), hard margin ``max(0, d_ap - d_an + margin)`` otherwise. The cross entropies use label
    smoothing ``label_smoothing`` (0.1 in the paper). Features and logits are promoted to float32 so the loss is
    computed in full precision under autocast.

    Args:
        margin: None (soft margin) or a finite float >= 0 (hard margin; 0 is legal), the rule of
            :class:`~bdb_ext.BatchHardTripletLoss`.
        label_smoothing: epsilon in [0, 1).
        triplet_global, triplet_bdb, ce_global, ce_bdb: the weights of the four terms (all 1 in the paper).

    Forward:
        ``loss(output, labels)`` with ``output`` a :class:`~bdb_ext.models.BDBOutput` (or any object with
        global_feature (N, Dg), bdb_feature (N, Db), global_logits (N, K), bdb_logits (N, K)) and labels (N,)
        int64 in [0, K). Returns :class:`BDBLossTerms`.
    """

    def __init__(self, margin: float | None = None, label_smoothing: float = 0.1, *, triplet_global: float = 1.0,
                 triplet_bdb: float = 1.0, ce_global: float = 1.0, ce_bdb: float = 1.0) -> None:
        super().__init__()
        margin = check_margin(margin)
        smoothing = _check_weight("label_smoothing", label_smoothing)
        if smoothing >= 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {smoothing}")
        self.margin = margin
        self.weights = {name: _check_weight(name, value) for name, value in (
            ("triplet_global", triplet_global), ("triplet_bdb", triplet_bdb), ("ce_global", ce_global),
            ("ce_bdb", ce_bdb))}
        self.cross_entropy = nn.CrossEntropyLoss(label_smoothing=smoothing)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, weights={self.weights}"

    def mining_batch(self, global_feature: torch.Tensor, bdb_feature: torch.Tensor, labels: torch.Tensor,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The features and labels the triplet terms mine over: this batch as is. A subclass widens it (e.g. to
        the global batch of all processes, :class:`bdb_ext.distributed.CrossRankBDBLoss`)."""
        return global_feature, bdb_feature, labels

    def forward(self, output: object, labels: torch.Tensor) -> BDBLossTerms:
        if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
            raise ValueError(f"labels must be a 1-D int64 tensor, got {labels!r:.80}")
        labels = labels.long()
        try:
            parts = (output.global_feature, output.bdb_feature, output.global_logits, output.bdb_logits)
        except AttributeError as error:
            raise TypeError(f"output must be a BDBOutput (the model's training-mode result), got "
                            f"{type(output).__name__}") from error
        global_feature, bdb_feature, global_logits, bdb_logits = (p.float() for p in parts)
        if global_feature.shape[0] != labels.shape[0]:
            raise ValueError(f"labels must have one entry per sample: {labels.shape[0]} labels for a batch of "
                             f"{global_feature.shape[0]}")
        mined_global, mined_bdb, mined_labels = self.mining_batch(global_feature, bdb_feature, labels)
        terms = {
            "triplet_global": ops.batch_hard_triplet_loss(mined_global, mined_labels, margin=self.margin),
            "triplet_bdb": ops.batch_hard_triplet_loss(mined_bdb, mined_labels, margin=self.margin),
            "ce_global": self.cross_entropy(global_logits, labels),
            "ce_bdb": self.cross_entropy(bdb_logits, labels),
        }
        total = sum(self.weights[name] * value for name, value in terms.items())
        return BDBLossTerms(total=total, **terms)
