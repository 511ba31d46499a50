"""Evaluating a model on a data set's test split with the protocol that data set uses."""

from __future__ import annotations

import torch
from torch import nn

from ..data.datasets import MetricLearningDataset, ReIDDataset
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


def evaluate(model: nn.Module, dataset: ReIDDataset | MetricLearningDataset, config: TrainConfig,
             device: torch.device, *, return_distmat: bool = False,
             ) -> ReIDResults | RecallResults | tuple[ReIDResults, torch.Tensor]:
    """Extract test features with ``model`` (eval mode) and score them.

    Re-ID data (the CUHK03 new protocol included): query vs gallery, single-query CMC / mAP / mINP on squared
    Euclidean distances (optionally re-ranked, optionally AP truncated at ``config.ap_cutoff``). Metric learning: Recall@K, all-vs-all over the
    test classes, or query vs gallery for In-Shop.
    """
    pin = device.type == "cuda"
    amp = amp_dtype(config.amp)
    if isinstance(dataset, ReIDDataset):
        q_feat, q_pids, q_cams = extract_features(model, test_loader(dataset.query, config, pin), device,
                                                  config.eval_flip, amp)
        g_feat, g_pids, g_cams = extract_features(model, test_loader(dataset.gallery, config, pin), device,
                                                  config.eval_flip, amp)
        return evaluate_reid(q_feat, g_feat, q_pids, g_pids, q_cams, g_cams, rerank=config.rerank,
                             ap_cutoff=config.ap_cutoff, protocol="market1501", dataset=config.dataset,
                             return_distmat=return_distmat)
    ks = recall_ks(config.dataset)
    if getattr(dataset, "query", None) is not None and getattr(dataset, "gallery", None) is not None:
        q_feat, q_pids, _ = extract_features(model, test_loader(dataset.query, config, pin), device,
                                             config.eval_flip, amp)
        g_feat, g_pids, _ = extract_features(model, test_loader(dataset.gallery, config, pin), device,
                                             config.eval_flip, amp)
        return evaluate_recall(q_feat, q_pids, ks, gallery=g_feat, gallery_labels=g_pids, dataset=config.dataset)
    feats, labels, _ = extract_features(model, test_loader(dataset.test, config, pin), device, config.eval_flip, amp)
    return evaluate_recall(feats, labels, ks, dataset=config.dataset)
