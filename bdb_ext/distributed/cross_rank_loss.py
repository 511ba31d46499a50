"""The BDB loss with batch-hard mining over the global batch of all ranks.

Why: with each rank mining only its own shard (what DataParallel-era code did), an anchor's hardest negative is
the hardest among 1/R of the batch, which is a different, easier loss than the paper's. Here every rank gathers the
embeddings (with gradients) and labels of all ranks and mines over the whole P x K batch.

Gradient scaling, so that R ranks x n samples equal 1 process x R*n in loss *and* gradients:

- triplet terms: every rank computes the same value T over the gathered batch. The backward of
  ``torch.distributed.nn.functional.all_gather`` *sums* the gradients that all ranks send to each rank's slice,
  so rank r's embeddings receive R * dT/de_r; DDP then *averages* parameter gradients over the R ranks, which
  gives sum_r dT/de_r * de_r/dtheta = dT/dtheta, the single-process gradient. No extra factor is needed.
- cross-entropy terms: each rank takes the mean over its own n samples; DDP's average over ranks of those
  gradients is the gradient of the mean over all R*n samples. The *value* of a rank's CE term is its local mean;
  the mean over ranks (:func:`bdb_ext.distributed.all_reduce_mean`, done for logging) is the global one.

So ``total`` differs between ranks only through the CE terms, and its mean over ranks is the single-process loss.
Mining computes the R*n x R*n distances on every rank (redundant but tiny next to the network: 128 x 128).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn

from ..losses.bdb_loss import BDBLoss
from .process_group import get_world_size, is_distributed

__all__ = ["CrossRankBDBLoss", "gather_with_grad"]


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Every rank's ``local`` rows concatenated in rank order, differentiable (the gradient of each slice is summed
    over ranks and returned to its owner). ``local`` unchanged outside a process group."""
    if not is_distributed():
        return local
    return torch.cat(dist_fn.all_gather(local.contiguous()), dim=0)


def _gather_labels(labels: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(labels) for _ in range(get_world_size())]
    dist.all_gather(parts, labels.contiguous())
    return torch.cat(parts)


class CrossRankBDBLoss(BDBLoss):
    """:class:`~bdb_ext.losses.BDBLoss` whose triplet terms mine over the global batch of all ranks.

    Same arguments, inputs and outputs as BDBLoss (per rank: its local output and labels, equal batch sizes on all
    ranks). The triplet terms are the global batch's (identical on every rank); the CE terms are the local means.
    Outside a process group (or with one process) it is exactly BDBLoss.
    """

    def mining_batch(self, global_feature: torch.Tensor, bdb_feature: torch.Tensor, labels: torch.Tensor,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not is_distributed():
            return global_feature, bdb_feature, labels
        # One collective for both features: they travel side by side and are split after the gather.
        width = global_feature.shape[1]
        both = gather_with_grad(torch.cat([global_feature, bdb_feature], dim=1))
        return both[:, :width], both[:, width:], _gather_labels(labels)
