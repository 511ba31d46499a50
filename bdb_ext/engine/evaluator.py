"""Evaluating a model on a data set's test split with the protocol that data set uses."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..data import ImageRecord
from ..data.datasets import MetricLearningDataset, ReIDDataset
from ..distributed import broadcast_object, gather_rows, get_rank, get_world_size, shard_bounds
from ..evaluation import RecallResults, ReIDResults, evaluate_recall, evaluate_reid, extract_features
from .config import TrainConfig
from .data import test_loader

__all__ = ["evaluate", "recall_ks", "amp_dtype"]


def amp_dtype(amp: str) -> torch.dtype | None:
    """"bf16" -> torch.bfloat16, "fp16" -> torch.float16, "none" -> None."""
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def recall_ks(dataset: str) -> tuple[int, ...]:
    """The Recall@K list each metric-learning benchmark reports."""
    return {"sop": (1, 10, 100, 1000), "inshop": (1, 10, 20, 30, 40, 50)}.get(dataset, (1, 2, 4, 8))


def _sharded_features(model: nn.Module, records: Sequence[ImageRecord], config: TrainConfig, device: torch.device,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """extract_features over ``records``; under torch.distributed each rank extracts a contiguous shard and the
    shards are gathered back in order on every rank (so every rank holds all features, as one process would)."""
    pin = device.type == "cuda"
    amp = amp_dtype(config.amp)
    world = get_world_size()
    if world == 1 or len(records) < world:
        return extract_features(model, test_loader(records, config, pin), device, config.eval_flip, amp)
    start, end = shard_bounds(len(records), get_rank(), world)
    feats, pids, camids = extract_features(model, test_loader(records[start:end], config, pin), device,
                                           config.eval_flip, amp)
    # NCCL moves CUDA tensors only; gloo CPU tensors.
    where = device if device.type == "cuda" else torch.device("cpu")
    feats = gather_rows(feats.to(where), len(records)).cpu()
    ids = gather_rows(torch.stack([pids, camids], dim=1).to(where), len(records)).cpu()
    return feats, ids[:, 0], ids[:, 1]


def evaluate(model: nn.Module, dataset: ReIDDataset | MetricLearningDataset, config: TrainConfig,
             device: torch.device, *, return_distmat: bool = False,
             ) -> ReIDResults | RecallResults | tuple[ReIDResults, torch.Tensor]:
    """Extract test features with ``model`` (eval mode) and score them.

    Re-ID data (the CUHK03 new protocol included): query vs gallery, single-query CMC / mAP / mINP on squared
    Euclidean distances (optionally re-ranked, optionally AP truncated at ``config.ap_cutoff``). Metric learning: Recall@K, all-vs-all over the
    test classes, or query vs gallery for In-Shop.

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
    features = functools.partial(_sharded_features, model, config=config, device=device)
    if isinstance(dataset, ReIDDataset):
        q_feat, q_pids, q_cams = features(dataset.query)
        g_feat, g_pids, g_cams = features(dataset.gallery)
        if not score:
            return None
        return evaluate_reid(q_feat, g_feat, q_pids, g_pids, q_cams, g_cams, rerank=config.rerank,
                             ap_cutoff=config.ap_cutoff, protocol="market1501", dataset=config.dataset,
                             return_distmat=return_distmat)
    ks = recall_ks(config.dataset)
    if getattr(dataset, "query", None) is not None and getattr(dataset, "gallery", None) is not None:
        q_feat, q_pids, _ = features(dataset.query)
        g_feat, g_pids, _ = features(dataset.gallery)
        if not score:
            return None
        return evaluate_recall(q_feat, q_pids, ks, gallery=g_feat, gallery_labels=g_pids, dataset=config.dataset)
    feats, labels, _ = features(dataset.test)
    if not score:
        return None
    return evaluate_recall(feats, labels, ks, dataset=config.dataset)
