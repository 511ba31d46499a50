"""One-call evaluation from features to a results object."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ._inputs import LabelsLike
from .distances import pairwise_distances
from .protocols import OFFICIAL_AP_CUTOFF, OFFICIAL_RANKS, STANDARD_RANKS
from .recall import recall_at_k, recall_at_k_query_gallery
from .reid_metrics import cuhk03_rank_metrics, rank_metrics
from .reranking import re_ranking_features
from .results import RecallResults, ReIDResults

__all__ = ["evaluate_reid", "evaluate_recall"]

_PROTOCOLS = ("market1501", "cuhk03")


def evaluate_reid(query_features: torch.Tensor | np.ndarray, gallery_features: torch.Tensor | np.ndarray,
                  query_pids: LabelsLike, gallery_pids: LabelsLike, query_camids: LabelsLike,
                  gallery_camids: LabelsLike, *, metric: str = "sqeuclidean",
                  rerank: bool = False, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                  ap_cutoff: int | None = None, protocol: str = "market1501", max_rank: int = 50,
                  ranks: Sequence[int] | None = None, dataset: str | None = None,
                  return_distmat: bool = False, eval_protocol: str = "standard", flip: bool | None = None,
                  ) -> ReIDResults | tuple[ReIDResults, torch.Tensor]:
    """Rank (Q, D) query features against (G, D) gallery features and compute the re-ID metrics.

    ``metric`` is the ranking distance (BDB: squared Euclidean). With ``rerank=True`` the distances are replaced by
    k-reciprocal re-ranking of the Euclidean distances (the published algorithm's input, whatever ``metric`` is).
    ``protocol`` "market1501" (also right for the CUHK03 new protocol, DukeMTMC-reID and MSMT17) or "cuhk03" (the
    classic single-gallery-shot CMC). ``return_distmat`` also returns the (Q, G) distances that were ranked.

    ``eval_protocol`` "standard" uses ``ap_cutoff`` as given and reports ``ranks`` (default 1/5/10/20); "official"
    is the official BDB evaluator's arithmetic: AP truncated at rank 50 (divided by all matches), ranks
    1/2/4/5/8/10/16/20, Market-1501 protocol, (squared) Euclidean ranking. Flip averaging happens before, at feature
    extraction; ``flip`` records whether it did (see :mod:`bdb_ext.evaluation.protocols`).
    """
    if protocol not in _PROTOCOLS:
        raise ValueError(f"evaluate_reid: protocol must be one of {_PROTOCOLS}, got {protocol!r}")
    if eval_protocol == "official":
        if protocol != "market1501" or metric not in ("sqeuclidean", "euclidean"):
            raise ValueError("evaluate_reid: eval_protocol 'official' ranks by (squared) Euclidean distance under "
                             f"the market1501 protocol, got protocol={protocol!r}, metric={metric!r}")
        if ap_cutoff not in (None, OFFICIAL_AP_CUTOFF):
            raise ValueError(f"evaluate_reid: eval_protocol 'official' truncates AP at {OFFICIAL_AP_CUTOFF}, got "
                             f"ap_cutoff={ap_cutoff}")
        ap_cutoff, max_rank = OFFICIAL_AP_CUTOFF, max(max_rank, OFFICIAL_AP_CUTOFF)
        ranks = OFFICIAL_RANKS if ranks is None else ranks
    elif eval_protocol != "standard":
        raise ValueError(f"evaluate_reid: eval_protocol must be 'standard' or 'official' (one set of features; "
                         f"'both' is bdb_ext.engine.evaluate's), got {eval_protocol!r}")
    ranks = STANDARD_RANKS if ranks is None else ranks
    if rerank:
        distmat = re_ranking_features(query_features, gallery_features, k1, k2, lambda_value)
    else:
        distmat = pairwise_distances(query_features, gallery_features, metric=metric)
    if protocol == "cuhk03":
        if ap_cutoff is not None:
            raise ValueError("evaluate_reid: ap_cutoff applies to the market1501 protocol only")
        metrics = cuhk03_rank_metrics(distmat, query_pids, gallery_pids, query_camids, gallery_camids, max_rank)
    else:
        metrics = rank_metrics(distmat, query_pids, gallery_pids, query_camids, gallery_camids, max_rank,
                               ap_cutoff)
    results = ReIDResults.from_metrics(metrics, dataset=dataset, protocol=protocol, reranked=rerank,
                                       ranks=tuple(ranks), eval_protocol=eval_protocol, flip=flip)
    return (results, distmat) if return_distmat else results


def evaluate_recall(embeddings: torch.Tensor | np.ndarray, labels: LabelsLike, ks: Sequence[int] = (1, 2, 4, 8),
                    *, gallery: torch.Tensor | np.ndarray | None = None, gallery_labels: LabelsLike | None = None,
                    metric: str = "euclidean", dataset: str | None = None, eval_protocol: str = "standard",
                    flip: bool | None = None) -> RecallResults:
    """Recall@K as a results object: all-vs-all (CUB, Cars196, SOP), or queries ``embeddings`` against
    ``gallery`` (In-Shop) when a gallery is given. ``eval_protocol`` ("standard" or "official") and ``flip`` are
    recorded in the results (for these data sets the official protocol differs only by flip-averaged features)."""
    if eval_protocol not in ("standard", "official"):
        raise ValueError(f"evaluate_recall: eval_protocol must be 'standard' or 'official', got {eval_protocol!r}")
    if (gallery is None) != (gallery_labels is None):
        raise ValueError("evaluate_recall: pass both gallery and gallery_labels, or neither")
    if gallery is None:
        recalls = recall_at_k(embeddings, labels, ks, metric=metric)
    else:
        recalls = recall_at_k_query_gallery(embeddings, gallery, labels, gallery_labels, ks, metric=metric)
    return RecallResults(recalls=recalls, dataset=dataset, eval_protocol=eval_protocol, flip=flip)
