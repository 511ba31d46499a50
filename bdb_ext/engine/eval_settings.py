"""Checking, before the first training step, every setting that the evaluation reads only at the end of an epoch."""

from __future__ import annotations

import torch

from ..data.datasets import MetricLearningDataset, ReIDDataset
from ..evaluation import evaluate_reid
from .config import TrainConfig
from .data import test_transform
from .evaluator import recall_ks

__all__ = ["check_evaluation_settings", "evaluation_metrics", "DRY_RUN_MAX_IMAGES"]

#: Re-ID test splits up to this many images (query + gallery) are scored once on random features before training:
#: what depends on the split's size (re-ranking's k1/k2 against a small set, queries without a true match) fails
#: there, in milliseconds, instead of after the first epoch. Larger splits are past every such limit.
DRY_RUN_MAX_IMAGES = 2048


def evaluation_metrics(config: TrainConfig, dataset: ReIDDataset | MetricLearningDataset) -> list[str]:
    """The metric names the trainer's evaluation reports for ``dataset`` (what ``best_metric`` may be)."""
    if isinstance(dataset, ReIDDataset):
        return ["mAP", "mINP", *(f"rank-{k}" for k in (1, 5, 10, 20))]  # ReIDResults' ranks (a CMC of 50)
    return [f"R@{k}" for k in recall_ks(config.dataset)]


def check_evaluation_settings(config: TrainConfig, dataset: ReIDDataset | MetricLearningDataset) -> None:
    """Raise ValueError, naming the setting, for what the evaluation would refuse: an empty test split, a
    best_metric the protocol does not report, re-ranking or an AP cut-off on Recall@K data, a test transform that
    cannot be built; and, for a small re-ID split, anything the scoring itself refuses at that size."""
    if isinstance(dataset, ReIDDataset):
        if not dataset.query or not dataset.gallery:
            raise ValueError(f"data set {config.dataset!r} has an empty query or gallery split "
                             f"({len(dataset.query)} query, {len(dataset.gallery)} gallery images): nothing to "
                             f"evaluate")
    else:
        if not any(getattr(dataset, name, None) for name in ("query", "gallery", "test")):
            raise ValueError(f"data set {config.dataset!r} has no test images: nothing to evaluate")
        for name in ("rerank", "ap_cutoff"):
            if getattr(config, name) not in (False, None):
                raise ValueError(f"{name}={getattr(config, name)!r} applies to re-ID data sets only; "
                                 f"{config.dataset!r} is evaluated by Recall@K")
    metrics = evaluation_metrics(config, dataset)
    if config.best_metric not in metrics:
        raise ValueError(f"best_metric {config.best_metric!r} is not reported for data set {config.dataset!r}; "
                         f"choose one of {metrics}")
    test_transform(config)
    if isinstance(dataset, ReIDDataset) and len(dataset.query) + len(dataset.gallery) <= DRY_RUN_MAX_IMAGES:
        _dry_run(config, dataset)


def _dry_run(config: TrainConfig, dataset: ReIDDataset) -> None:
    generator = torch.Generator().manual_seed(0)
    query, gallery = dataset.query, dataset.gallery
    try:
        evaluate_reid(torch.randn(len(query), 8, generator=generator), torch.randn(len(gallery), 8, generator=generator),
                      [r.pid for r in query], [r.pid for r in gallery], [r.camid for r in query],
                      [r.camid for r in gallery], rerank=config.rerank, ap_cutoff=config.ap_cutoff,
                      protocol="market1501", dataset=config.dataset)
    except (ValueError, RuntimeError, IndexError) as error:
        raise ValueError(f"the evaluation settings fail on data set {config.dataset!r} ({len(query)} query, "
                         f"{len(gallery)} gallery images; rerank={config.rerank}, ap_cutoff={config.ap_cutoff}): "
                         f"{error}") from error
