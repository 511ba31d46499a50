"""Scoring a model on its data set's test split with the protocol that data set uses, and checking before the first
training step every setting that scoring reads only at the end of an epoch."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..data import ImageRecord
from ..data.datasets import MetricLearningDataset, ReIDDataset
from ..distributed import broadcast_object, gather_rows, get_rank, get_world_size, shard_bounds
from ..evaluation import (OFFICIAL_RANKS, STANDARD_RANKS, ProtocolComparison, RecallResults, ReIDResults,
                          evaluate_recall, evaluate_reid, extract_features, extract_features_and_flipped)
from .config import TrainConfig
from .loaders import test_loader, test_transform

__all__ = ["DRY_RUN_MAX_IMAGES", "amp_dtype", "check_evaluation_settings", "evaluate", "evaluation_metrics",
           "recall_ks"]


def amp_dtype(amp: str) -> torch.dtype | None:
    """"bf16" -> torch.bfloat16, "fp16" -> torch.float16, "none" -> None."""
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def recall_ks(dataset: str) -> tuple[int, ...]:
    """The Recall@K list each metric-learning benchmark reports."""
    return {"sop": (1, 10, 100, 1000), "inshop": (1, 10, 20, 30, 40, 50)}.get(dataset, (1, 2, 4, 8))


def _extract(model: nn.Module, loader: Any, device: torch.device, amp: torch.dtype | None, views: str,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features (N, D) or (N, 2D) [plain | flip-averaged] for ``views`` "both", pids, camids)."""
    if views == "both":
        plain, averaged, pids, camids = extract_features_and_flipped(model, loader, device, amp)
        return torch.cat([plain, averaged], dim=1), pids, camids
    return extract_features(model, loader, device, views == "averaged", amp)


def _sharded_features(model: nn.Module, records: Sequence[ImageRecord], config: TrainConfig, device: torch.device,
                      views: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The features of ``records`` (see :func:`_extract`); under torch.distributed each rank extracts a contiguous
    shard and the shards are gathered back in order on every rank (so every rank holds all features, as one
    process would)."""
    pin = device.type == "cuda"
    amp = amp_dtype(config.amp)
    world = get_world_size()
    if world == 1 or len(records) < world:
        return _extract(model, test_loader(records, config, pin), device, amp, views)
    start, end = shard_bounds(len(records), get_rank(), world)
    feats, pids, camids = _extract(model, test_loader(records[start:end], config, pin), device, amp, views)
    # NCCL moves CUDA tensors only; gloo CPU tensors.
    where = device if device.type == "cuda" else torch.device("cpu")
    feats = gather_rows(feats.to(where), len(records)).cpu()
    ids = gather_rows(torch.stack([pids, camids], dim=1).to(where), len(records)).cpu()
    return feats, ids[:, 0], ids[:, 1]


def _views(config: TrainConfig) -> tuple[str, dict[str, bool]]:
    """What to extract for ``config.eval_protocol``, and whether each protocol's features are flip-averaged."""
    flips = {"standard": config.eval_flip, "official": True}
    wanted = ("standard", "official") if config.eval_protocol == "both" else (config.eval_protocol,)
    kinds = {flips[name] for name in wanted}
    views = "both" if len(kinds) == 2 else ("averaged" if kinds == {True} else "plain")
    return views, {name: flips[name] for name in wanted}


def _split(feats: torch.Tensor, views: str, flip: bool) -> torch.Tensor:
    """The plain or flip-averaged half of features extracted with ``views``."""
    if views != "both":
        return feats
    half = feats.shape[1] // 2
    return feats[:, half:] if flip else feats[:, :half]


def evaluate(model: nn.Module, dataset: ReIDDataset | MetricLearningDataset, config: TrainConfig,
             device: torch.device, *, return_distmat: bool = False,
             ) -> ReIDResults | RecallResults | ProtocolComparison | tuple[Any, torch.Tensor]:
    """Extract test features with ``model`` (eval mode) and score them.

    Re-ID data (the CUHK03 new protocol included): query vs gallery, single-query CMC / mAP / mINP on squared
    Euclidean distances (optionally re-ranked, optionally AP truncated at ``config.ap_cutoff``). Metric learning: Recall@K, all-vs-all over the
    test classes, or query vs gallery for In-Shop.

    ``config.eval_protocol``: "standard" (flip-averaged features if ``eval_flip``, AP cut at ``ap_cutoff`` if set),
    "official" (the official BDB evaluator: flip-averaged features, AP@50, ranks 1/2/4/5/8/10/16/20), or "both" from
    one feature pass (a :class:`ProtocolComparison`, whose top-level metrics are the official ones).

    Under torch.distributed (call it on every rank): feature extraction is sharded over the ranks, the metrics are
    computed on rank 0 only, and its results are returned on every rank.
    """
    if get_world_size() == 1:
        return _score(model, dataset, config, device, return_distmat)
    # Every rank takes part in the gathers inside _score; only rank 0 does the (CPU-heavy) ranking.
    results = _score(model, dataset, config, device, return_distmat, score=get_rank() == 0)
    return broadcast_object(results)


def _score(model: nn.Module, dataset: ReIDDataset | MetricLearningDataset, config: TrainConfig,
           device: torch.device, return_distmat: bool, score: bool = True) -> Any:
    views, flips = _views(config)
    features = functools.partial(_sharded_features, model, config=config, device=device, views=views)
    if isinstance(dataset, ReIDDataset):
        q_feat, q_pids, q_cams = features(dataset.query)
        g_feat, g_pids, g_cams = features(dataset.gallery)
        if not score:
            return None
        scored = {name: evaluate_reid(_split(q_feat, views, flip), _split(g_feat, views, flip), q_pids, g_pids,
                                      q_cams, g_cams, rerank=config.rerank,
                                      ap_cutoff=config.ap_cutoff if name == "standard" else None,
                                      protocol="market1501", dataset=config.dataset, return_distmat=True,
                                      eval_protocol=name, flip=flip)
                  for name, flip in flips.items()}
        results = _combine({name: r for name, (r, _) in scored.items()})
        # "both": the official ranking is the one returned (the one whose numbers the results lead with).
        distmat = scored["official" if "official" in scored else "standard"][1]
        return (results, distmat) if return_distmat else results
    ks = recall_ks(config.dataset)
    if getattr(dataset, "query", None) is not None and getattr(dataset, "gallery", None) is not None:
        q_feat, q_pids, _ = features(dataset.query)
        g_feat, g_pids, _ = features(dataset.gallery)
        if not score:
            return None
        return _combine({name: evaluate_recall(_split(q_feat, views, flip), q_pids, ks,
                                               gallery=_split(g_feat, views, flip), gallery_labels=g_pids,
                                               dataset=config.dataset, eval_protocol=name, flip=flip)
                         for name, flip in flips.items()})
    feats, labels, _ = features(dataset.test)
    if not score:
        return None
    return _combine({name: evaluate_recall(_split(feats, views, flip), labels, ks, dataset=config.dataset,
                                           eval_protocol=name, flip=flip)
                     for name, flip in flips.items()})


def _combine(results: dict[str, Any]) -> Any:
    """One protocol's results, or both side by side."""
    if len(results) == 2:
        return ProtocolComparison(official=results["official"], standard=results["standard"])
    return next(iter(results.values()))


#: Re-ID test splits up to this many images (query + gallery) are scored once on random features before training:
#: what depends on the split's size (re-ranking's k1/k2 against a small set, queries without a true match) fails
#: there, in milliseconds, instead of after the first epoch. Larger splits are past every such limit.
DRY_RUN_MAX_IMAGES = 2048


def evaluation_metrics(config: TrainConfig, dataset: ReIDDataset | MetricLearningDataset) -> list[str]:
    """The metric names the trainer's evaluation reports for ``dataset`` (what ``best_metric`` may be)."""
    if isinstance(dataset, ReIDDataset):
        # The ranks the results report: the protocol's ("both" reports the official numbers at the top level).
        ranks = STANDARD_RANKS if config.eval_protocol == "standard" else OFFICIAL_RANKS
        return ["mAP", "mINP", *(f"rank-{k}" for k in ranks)]
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
