"""From features to a results object, under one of the two evaluation protocols: bdb_ext's standard one and the
official BDB code's, or both side by side (:func:`evaluate_reid`, :func:`evaluate_recall`).

- ``"standard"`` (the default): torchreid / Market-1501-kit metrics: AP over the full ranking, CMC reported at ranks
  1/5/10/20; test features flip-averaged only if asked (``eval_flip``), AP truncated only if asked (``ap_cutoff``).
- ``"official"``: what the official evaluator (``trainers/evaluator.py`` of daizuozhuo/batch-dropblock-network, at the
  commits behind the published numbers) computed: every test feature averaged with its mirror image's, squared
  Euclidean distances, AP summed over the top 50 ranks but divided by all matches (``eval_func_gpu``, max_rank 50),
  CMC at ranks 1/2/4/5/8/10/16/20. Same-id same-camera gallery images are removed in both. For metric-learning data
  sets "official" means flip-averaged features with the usual Recall@K.
- ``"both"``: both from one feature pass, printed side by side (:class:`ProtocolComparison`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._inputs import LabelsLike
from .distances import pairwise_distances
from .recall import recall_at_k, recall_at_k_query_gallery
from .reid_metrics import cuhk03_rank_metrics, rank_metrics
from .reranking import re_ranking_features
from .results import RecallResults, ReIDResults, _table, _write_json

__all__ = ["EVAL_PROTOCOLS", "OFFICIAL_AP_CUTOFF", "OFFICIAL_RANKS", "STANDARD_RANKS", "check_eval_protocol",
           "ProtocolComparison", "evaluate_recall", "evaluate_reid"]

EVAL_PROTOCOLS = ("standard", "official", "both")
#: The official evaluator's AP cut-off (its ``max_rank``) and printed CMC ranks.
OFFICIAL_AP_CUTOFF = 50
OFFICIAL_RANKS = (1, 2, 4, 5, 8, 10, 16, 20)
STANDARD_RANKS = (1, 5, 10, 20)


def check_eval_protocol(name: object) -> str:
    """``name`` if it is one of :data:`EVAL_PROTOCOLS`, else a clear error."""
    if name not in EVAL_PROTOCOLS:
        raise ValueError(f"eval_protocol must be one of {EVAL_PROTOCOLS}, got {name!r}")
    return name


@dataclass
class ProtocolComparison:
    """The same features scored under both protocols (``--eval-protocol both``).

    ``as_dict`` is the official results' dict (so ``best_metric`` "rank-1" or "mAP" means the official numbers, those
    the papers report) with ``eval_protocol`` "both" and the standard results' dict under ``"standard"``.
    """

    official: ReIDResults | RecallResults
    standard: ReIDResults | RecallResults

    @property
    def dataset(self) -> str | None:
        return self.official.dataset

    def as_dict(self) -> dict[str, Any]:
        return {**self.official.as_dict(), "eval_protocol": "both", "standard": self.standard.as_dict()}

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`as_dict` to ``path`` (parents created); returns the path."""
        return _write_json(self.as_dict(), path)

    def __str__(self) -> str:
        title = f"Results{f' on {self.dataset}' if self.dataset else ''} (standard | official)"
        rows = [("", f"{'standard':>9} | {'official':>9}")]
        if isinstance(self.official, ReIDResults):
            std, off = self.standard, self.official
            rows += [("flip-averaged", f"{_yes(std.flip):>9} | {_yes(off.flip):>9}"),
                     ("AP cut-off", f"{_cutoff(std.ap_cutoff):>9} | {_cutoff(off.ap_cutoff):>9}"),
                     ("mAP", _pair(std.mAP, off.mAP)), ("mINP", _pair(std.mINP, off.mINP))]
            ranks = sorted(set(std.ranks) | set(off.ranks))
            rows += [(f"Rank-{k}", _pair(std.rank(k), off.rank(k))) for k in ranks
                     if k <= min(len(std.cmc), len(off.cmc))]
        else:
            rows += [("flip-averaged", f"{_yes(self.standard.flip):>9} | {_yes(self.official.flip):>9}")]
            rows += [(f"R@{k}", _pair(self.standard.recalls[k], self.official.recalls[k]))
                     for k in sorted(self.official.recalls)]
        return _table(title, rows)


def _pair(standard: float, official: float) -> str:
    return f"{100 * standard:>8.1f}% | {100 * official:>8.1f}%"


def _yes(flag: bool | None) -> str:
    return "?" if flag is None else ("yes" if flag else "no")


def _cutoff(cutoff: int | None) -> str:
    return "none" if cutoff is None else str(cutoff)


# The CMC rules evaluate_reid's `protocol` chooses between (not the standard/official protocols above).
_RANKING_PROTOCOLS = ("market1501", "cuhk03")


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
    if protocol not in _RANKING_PROTOCOLS:
        raise ValueError(f"evaluate_reid: protocol must be one of {_RANKING_PROTOCOLS}, got {protocol!r}")
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
